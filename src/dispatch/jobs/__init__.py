"""dispatch.jobs: a DoJobber-compatible job engine whose state can live in zeo.

A DoJobber 0.6 program runs unchanged after
``from dispatch.jobs import Job, DummyJob, RunonlyJob, DoJobber``; give
``DoJobber(db=zeo.DB(address), run_name="...")`` to record the run in the
database so that it resumes after a crash and can be watched from elsewhere.
"""

import logging

from .engine import DoJobber
from .errors import (
    DependencyEntryError,
    GraphRenderError,
    JobConfigurationError,
    JobTypeError,
    JobValueError,
    NotConfiguredError,
)
from .job import DummyJob, Job, RunonlyJob

__all__ = [
    "DependencyEntryError",
    "DoJobber",
    "DummyJob",
    "GraphRenderError",
    "Job",
    "JobConfigurationError",
    "JobTypeError",
    "JobValueError",
    "NotConfiguredError",
    "RunonlyJob",
]

# A library stays quiet unless the application configures logging (the
# verbose lines on stderr are the user-facing output, as in DoJobber).
logging.getLogger(__name__).addHandler(logging.NullHandler())
