"""The web console, ``dispatch web -C conf/dispatch.conf``: runs, dead
letters, services, the zeo server's figures and ``/metrics``, as pages and
as JSON under ``/api/`` (the same data).

It reads state through zeo and acts through the functions the commands
use (:mod:`dispatch.state`), never a copy of their logic.  One module per
area: :mod:`~dispatch.web.runs`, :mod:`~dispatch.web.deadletters`,
:mod:`~dispatch.web.services`, :mod:`~dispatch.web.zeofigures`,
:mod:`~dispatch.web.metrics`, :mod:`~dispatch.web.login`; who may act is
:mod:`~dispatch.web.auth`; :mod:`~dispatch.web.app` puts them together.
Nothing here imports :mod:`dispatch.cli` or :mod:`dispatch.runtime`.
"""
