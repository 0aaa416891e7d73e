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
