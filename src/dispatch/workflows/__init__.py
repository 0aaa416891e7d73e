"""python-workflows and zocalo services on dispatch: the ``zeo`` transport.

Only :mod:`dispatch.workflows.transport` imports python-workflows (the
optional extra ``zeopapa[workflows]``); this package itself imports nothing,
so dispatch works without it.
"""
