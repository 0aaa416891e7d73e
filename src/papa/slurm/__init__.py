"""Slurm jobs as papa processes.

:mod:`.timespec` reads Slurm's time formats, :mod:`.partitions` holds the
configured partitions and environments, reads ``sinfo`` and checks requests
against the limits, :mod:`.script` renders the batch script, :mod:`.tools`
runs ``sbatch``/``squeue``/``scontrol``/``scancel``, and :mod:`.job` is the
:class:`~papa.process.ManagedProcess` that tracks one job.
"""

from .partitions import Environment, Partition, SlurmSettings
from .timespec import format_time, parse_time

__all__ = ["Environment", "Partition", "SlurmSettings", "format_time", "parse_time"]
