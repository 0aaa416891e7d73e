"""Our ``list partitions`` command: the Slurm partitions jobs may use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Error
from .table import command

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..protocol import CommandStream


@command(
    "list partitions",
    "",
    "List Slurm partitions with their limits and free resources",
    """List the Slurm partitions jobs may use (the configured ones, else all
that sinfo shows), one line each: the configured description and what sinfo
says now: nodes and CPUs idle/allocated/total, memory per node (MB), the
largest nprocs and ngpus a job may ask for, and the time limit.""",
    position=100,
    extension=True,
)
def list_partitions(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    if arguments:
        raise Error("list partitions takes no argument")

    def text(value: object) -> str:
        value = str(value)
        return stream.quote(value) if stream.escapes else value.replace(" ", "_")

    return "\n".join(
        " ".join(
            [text(row.pop("name"))]
            + [f"{key}={text(value)}" for key, value in row.items()]
        )
        for row in kernel.list_partitions()
    )


@command(
    "check slurm",
    "[slurm.KEY=VALUE…]",
    "Check a Slurm request without submitting it",
    """Check the slurm.KEY=VALUE requests of a make process line against the
partition limits, as make process would, without submitting anything.
Answers with the sbatch options the request gives, one per line, or an
error naming the field: "slurm.nprocs: nprocs 3 exceeds max-nprocs 2 of
partition debug".""",
    position=101,
    extension=True,
)
def check_slurm(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    request = {}
    for word in arguments:
        key, separator, value = word.partition("=")
        if not separator or not key.startswith("slurm."):
            raise Error(f"check slurm takes slurm.KEY=VALUE words, not {word!r}")
        request[key[len("slurm.") :]] = value
    checked = kernel.check_slurm(request)
    return "\n".join(checked.directives + checked.extra_options)
