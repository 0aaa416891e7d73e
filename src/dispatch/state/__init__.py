"""dispatch's state: the persistent model in zeo and the operations on it.

- :mod:`~dispatch.state.model`: runs, steps, messages, deliveries, queues,
  dead letters and service instances as persistent objects, with
  :mod:`~dispatch.state.shards` (indexes split so writers do not conflict);
- :mod:`~dispatch.state.recipe`, :mod:`~dispatch.state.parameters` and
  :mod:`~dispatch.state.steps` (the kinds of step, in one registry): what a
  run is made of;
- :mod:`~dispatch.state.broker` (start a run, claim, finish, release),
  :mod:`~dispatch.state.admin` (cancel, retry, drain, service instances),
  :mod:`~dispatch.state.deadletters`, :mod:`~dispatch.state.programs`
  (command steps' papa programs), :mod:`~dispatch.state.wrapper`: the
  operations, each on one open connection, the commit left to the caller;
- :mod:`~dispatch.state.database` (a transaction of dispatch state) and
  :mod:`~dispatch.state.views` (what commands show).

Nothing here imports :mod:`dispatch.runtime` or :mod:`dispatch.cli`.
"""
