"""dispatch's runtime: what consumes the state in :mod:`dispatch.state`.

- :mod:`~dispatch.runtime.consumer`: claim, handle and complete messages of
  one queue, every commit through one conflict-retry loop;
- :mod:`~dispatch.runtime.claiming`: how a consumer of a shared queue claims
  (home shards after a lost race), for consumers and the ``zeo`` transport;
- :mod:`~dispatch.runtime.service` (the ``Service`` base and its lookup) and
  :mod:`~dispatch.runtime.instance` (one ``dispatch service`` process);
- :mod:`~dispatch.runtime.commandrunner` and
  :mod:`~dispatch.runtime.program_ends`: command and Slurm steps through
  papa, whose address :mod:`~dispatch.runtime.kernel` reads;
- :mod:`~dispatch.runtime.supervisor`: keep configured instances running;
- :mod:`~dispatch.runtime.examples`: two small services for the demo.

Nothing here imports :mod:`dispatch.cli`.
"""
