"""Partitions and environments: configured limits, live ``sinfo``, requests.

Partitions are configured moss-style in the ``<slurm>`` section of
papa.conf; every limit left out is read from ``sinfo``.  A request (the
``slurm`` keys of ``make process``) is checked against those limits before
``sbatch`` runs and refused with a message that names the limit; strings
with a newline are refused, since they would end up in the batch script.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shlex
import time

from ..errors import Error, LimitError, RequestError
from . import tools
from .timespec import INFINITE, format_time, parse_time

log = logging.getLogger(__name__)

# Requests are checked against an sinfo answer at most this old.
LIMITS_MAX_AGE_SECONDS = 10.0
REQUEST_KEYS = (
    "partition",
    "nprocs",
    "memory",
    "ngpus",
    "runtime",
    "reservation",
    "account",
    "qos",
    "nodes",
    "ntasks",
    "array",
    "dependency",
    "options",
    "output",
    "environment",
    "path",
    "modules",
    "prologue",
)
_MEMORY = re.compile(r"^([0-9]+)([KMGT]?)$", re.IGNORECASE)
_MEMORY_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}
_WORD = re.compile(r"^[A-Za-z0-9_.+\-]+$")
_ARRAY = re.compile(r"^[0-9][0-9,\-:%]*$")
_DEPENDENCY = re.compile(r"^[A-Za-z0-9_:,?+]+$")
_GPU_GRES = re.compile(r"^gpu:([^:(]+):([0-9]+)")


@dataclasses.dataclass
class Environment:
    """Software set up before the command: modules, a PATH entry, a prologue."""

    name: str
    description: str = ""
    path: str = ""
    modules: str = ""
    add_to_path: bool = True
    prologue: str = ""

    def prologue_lines(self) -> list[str]:
        lines = [self.prologue] if self.prologue else []
        if self.modules:
            lines.append(
                "module load " + " ".join(map(shlex.quote, self.modules.split()))
            )
        if self.path and self.add_to_path and not self.path.endswith(".sif"):
            lines.append(f'export PATH={shlex.quote(self.path)}:"$PATH"')
        return lines


@dataclasses.dataclass
class Partition:
    """A partition's configured description and limits (None: ask sinfo)."""

    name: str
    architecture: str = ""
    description: str = ""
    gpu: str | None = None
    max_ngpus: int | None = None
    max_nprocs: int | None = None
    max_runtime: int | None = None
    simple: bool = True
    environments: dict[str, Environment] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PartitionInfo:
    """What sinfo says about a partition (several node groups are summed)."""

    name: str
    default: bool = False
    nodes: tuple[int, int, int, int] = (0, 0, 0, 0)  # allocated/idle/other/total
    cpus: tuple[int, int, int, int] = (0, 0, 0, 0)
    max_nprocs: int = 0
    memory_mb: int = 0
    gpu: str = ""
    max_ngpus: int = 0
    max_runtime: int | None = INFINITE


def parse_sinfo(text: str) -> dict[str, PartitionInfo]:
    """Partitions from :func:`tools.sinfo`'s output.

    Unlike moss, several lines for one partition (node groups) are summed
    for counts and maximised for per-node sizes, instead of the last winning.
    """
    result: dict[str, PartitionInfo] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 7:
            continue
        name, nodes, cpus_per_node, cpus, gres, memory, limit = fields
        default = name.endswith("*")
        name = name.rstrip("*")
        info = result.setdefault(name, PartitionInfo(name))
        info.default = info.default or default
        try:
            info.nodes = _add(info.nodes, nodes)
            info.cpus = _add(info.cpus, cpus)
            info.max_nprocs = max(info.max_nprocs, int(cpus_per_node.rstrip("+")))
            info.memory_mb = max(info.memory_mb, int(memory.rstrip("+")))
            info.max_runtime = parse_time(limit)
        except (ValueError, Error) as exc:
            log.warning("cannot read sinfo line %r: %s", line, exc)
            continue
        for entry in gres.split(","):
            match = _GPU_GRES.match(entry)
            if match and not info.gpu:
                info.gpu = f"gpu:{match.group(1)}:{{}}"
                info.max_ngpus = int(match.group(2))
    return result


def _add(total: tuple, text: str) -> tuple:
    values = tuple(int(value) for value in text.split("/"))
    if len(values) != 4:
        raise ValueError(f"expected A/I/O/T, not {text!r}")
    return tuple(a + b for a, b in zip(total, values, strict=True))


@dataclasses.dataclass
class SbatchRequest:
    """A checked request: sbatch options, the prologue, and what to keep."""

    partition: str | None
    directives: list[str]
    extra_options: list[str]
    prologue: list[str]
    array: bool
    keep_output: bool


class SlurmSettings:
    """The configured partitions and environments, with sinfo behind them."""

    def __init__(self, partitions=(), environments=()):
        self.partitions: dict[str, Partition] = {p.name: p for p in partitions}
        self.environments: dict[str, Environment] = {e.name: e for e in environments}
        self.query_sinfo = tools.sinfo
        self._live: tuple[float, dict[str, PartitionInfo]] | None = None

    @classmethod
    def from_config(cls, section) -> SlurmSettings:
        """Settings from the ZConfig ``<slurm>`` section (None: nothing set)."""
        if section is None:
            return cls()
        environments = [_environment(e) for e in section.environments]
        partitions = []
        for entry in section.partitions:
            partition = Partition(
                name=entry.getSectionName(),
                architecture=entry.architecture or "",
                description=entry.description or "",
                gpu=entry.gpu,
                max_ngpus=entry.max_ngpus,
                max_nprocs=entry.max_nprocs,
                max_runtime=parse_time(entry.max_runtime)
                if entry.max_runtime
                else None,
                simple=entry.simple,
                environments={
                    e.getSectionName(): _environment(e) for e in entry.environments
                },
            )
            if (
                partition.gpu is not None
                and partition.gpu
                and "{}" not in partition.gpu
            ):
                raise Error(f"partition {partition.name}: gpu must contain {{}}")
            if partition.gpu == "":
                partition.max_ngpus = 0
            partitions.append(partition)
        return cls(partitions, environments)

    def live(self, max_age: float = 0.0) -> dict[str, PartitionInfo]:
        """sinfo's partitions; an answer up to ``max_age`` seconds old may do.

        Checking requests reuses a recent answer (limits rarely change, and
        one sinfo per submission halved the submission rate); ``list
        partitions`` always asks afresh for its live resources.
        """
        now = time.monotonic()
        if max_age > 0 and self._live is not None and now - self._live[0] < max_age:
            return self._live[1]
        live = parse_sinfo(self.query_sinfo())
        self._live = (now, live)
        return live

    def table(self, max_age: float = 0.0) -> list[dict]:
        """``list partitions``: configured descriptions with live resources
        (from an sinfo answer up to *max_age* seconds old)."""
        live = self.live(max_age)
        names = list(self.partitions) or list(live)
        rows = []
        for name in names:
            configured = self.partitions.get(name, Partition(name))
            info = live.get(name)
            row = {"name": name, "description": configured.description}
            if configured.architecture:
                row["architecture"] = configured.architecture
            if info is None:
                row["missing"] = "not in sinfo"
                log.warning("configured partition %s is not known to Slurm", name)
                rows.append(row)
                continue
            allocated, idle, _, total = info.nodes
            row.update(nodes_idle=idle, nodes_allocated=allocated, nodes_total=total)
            allocated, idle, _, total = info.cpus
            row.update(cpus_idle=idle, cpus_allocated=allocated, cpus_total=total)
            row["memory_mb"] = info.memory_mb
            row["max_nprocs"] = _first(configured.max_nprocs, info.max_nprocs)
            row["max_ngpus"] = _first(configured.max_ngpus, info.max_ngpus)
            row["max_runtime"] = format_time(
                configured.max_runtime if configured.max_runtime else info.max_runtime
            )
            row["default"] = info.default
            # What a spawn form needs (papa.slurm.form): whether the partition
            # is offered on the simple tab, whether it has GPUs, its software.
            row["simple"] = configured.simple
            template = configured.gpu if configured.gpu is not None else info.gpu
            row["gpu"] = bool(template)
            environments = list(configured.environments) + list(self.environments)
            if environments:
                row["environments"] = ",".join(environments)
            rows.append(row)
        return rows

    def check(self, request: dict[str, str]) -> SbatchRequest:
        """Check a request against the limits; the sbatch options it gives."""
        for key, value in request.items():
            if key not in REQUEST_KEYS:
                raise RequestError(
                    key,
                    f'Unknown slurm request "{key}"; expected one of: '
                    + ", ".join(REQUEST_KEYS),
                )
            # Values become #SBATCH lines, where a newline would smuggle in
            # more; a prologue is shell code in the script's body, and who may
            # send one may run any program through the kernel anyway.
            if key != "prologue" and ("\n" in value or "\r" in value):
                raise RequestError(key, f"slurm {key} must not contain a newline")
        name = request.get("partition") or None
        if name is None and self.partitions:
            simple = [p for p in self.partitions.values() if p.simple]
            name = (simple or list(self.partitions.values()))[0].name
        if self.partitions and name not in self.partitions:
            raise RequestError(
                "partition",
                f"partition {name!r} is not configured; configured partitions: "
                + ", ".join(self.partitions),
            )
        configured = self.partitions.get(name or "", Partition(name or ""))
        limits = _Limits(self, configured, name)
        directives = []
        if name:
            _word("partition", name)
            if not self.partitions:
                limits.info()  # an unknown partition is refused here, by field
            directives.append(f"--partition={name}")
        nprocs = _integer(request, "nprocs", minimum=1)
        if nprocs is not None:
            limits.check("nprocs", nprocs, "max-nprocs", "max_nprocs")
            directives.append(f"--cpus-per-task={nprocs}")
        memory = request.get("memory")
        if memory:
            directives.append(f"--mem={limits.memory(memory)}")
        ngpus = _integer(request, "ngpus", minimum=0)
        if ngpus:
            template = (
                configured.gpu if configured.gpu is not None else limits.info().gpu
            )
            if not template:
                # No GPUs is a limit of 0 GPUs.
                raise LimitError(
                    "ngpus", f"partition {name} has no GPUs (no gpu template)"
                )
            limits.check("ngpus", ngpus, "max-ngpus", "max_ngpus")
            directives.append(f"--gres={template.format(ngpus)}")
        runtime = request.get("runtime")
        if runtime:
            try:
                seconds = parse_time(runtime)
            except Error as exc:
                raise RequestError("runtime", str(exc)) from None
            limit = configured.max_runtime or limits.info().max_runtime
            if limit is not INFINITE and (seconds is INFINITE or seconds > limit):
                raise LimitError(
                    "runtime",
                    f"runtime {runtime} exceeds max-runtime {format_time(limit)} "
                    f"of partition {limits.name}",
                )
            directives.append(f"--time={runtime.strip()}")
        for key in ("reservation", "account", "qos"):
            if request.get(key):
                directives.append(f"--{key}={_word(key, request[key])}")
        nodes = _integer(request, "nodes", minimum=1)
        if nodes is not None:
            total = limits.info().nodes[3]
            if total and nodes > total:
                raise LimitError(
                    "nodes",
                    f"nodes {nodes} exceeds the {total} nodes of partition {limits.name}",
                )
            directives.append(f"--nodes={nodes}")
        ntasks = _integer(request, "ntasks", minimum=1)
        if ntasks is not None:
            directives.append(f"--ntasks={ntasks}")
        array = request.get("array", "")
        if array:
            if not _ARRAY.match(array):
                raise RequestError(
                    "array", f"array {array!r} is not a Slurm array like 0-3 or 1,5%2"
                )
            directives.append(f"--array={array}")
        dependency = request.get("dependency", "")
        if dependency:
            if not _DEPENDENCY.match(dependency):
                raise RequestError(
                    "dependency", f"dependency {dependency!r} is not like afterok:123"
                )
            directives.append(f"--dependency={dependency}")
        try:
            extra = shlex.split(request.get("options", ""))
        except ValueError as exc:
            raise RequestError(
                "options", f"slurm options cannot be split into words: {exc}"
            )
        for option in extra:
            if not option.startswith("-"):
                raise RequestError(
                    "options", f"slurm options must be sbatch options, not {option!r}"
                )
        return SbatchRequest(
            partition=name,
            directives=directives,
            extra_options=extra,
            prologue=self._environment(configured, request).prologue_lines(),
            array=bool(array),
            keep_output=request.get("output", "") not in ("", "0", "false", "False"),
        )

    def _environment(self, partition: Partition, request: dict) -> Environment:
        wanted = request.get("environment")
        if wanted:
            found = partition.environments.get(wanted) or self.environments.get(wanted)
            if found is None:
                known = list(partition.environments) + list(self.environments)
                raise RequestError(
                    "environment",
                    f"environment {wanted!r} is not configured"
                    + (f"; configured: {', '.join(known)}" if known else ""),
                )
            return found
        if any(request.get(key) for key in ("path", "modules", "prologue")):
            return Environment(
                "custom",
                path=request.get("path", ""),
                modules=request.get("modules", ""),
                prologue=request.get("prologue", ""),
            )
        if partition.environments:
            return next(iter(partition.environments.values()))
        return Environment("none")


class _Limits:
    """One request's limits: configured first, sinfo (read once) otherwise."""

    def __init__(self, settings: SlurmSettings, configured: Partition, name):
        self.settings = settings
        self.configured = configured
        self.requested = name
        self._info: PartitionInfo | None = None

    @property
    def name(self) -> str:
        return self.requested or self.info().name

    def info(self) -> PartitionInfo:
        if self._info is None:
            try:
                live = self.settings.live(max_age=LIMITS_MAX_AGE_SECONDS)
            except tools.SlurmCommandError as exc:
                raise Error(f"cannot read the partition limits from sinfo: {exc}")
            if self.requested is None:
                defaults = [info for info in live.values() if info.default]
                self._info = defaults[0] if defaults else PartitionInfo("")
            elif self.requested in live:
                self._info = live[self.requested]
            else:
                raise RequestError(
                    "partition",
                    f"partition {self.requested!r} is not known to Slurm; known: "
                    + ", ".join(live),
                )
        return self._info

    def check(self, key: str, value: int, limit_name: str, attribute: str) -> None:
        limit = getattr(self.configured, attribute)
        if limit is None:
            limit = getattr(self.info(), attribute)
        if limit and value > limit:
            raise LimitError(
                key,
                f"{key} {value} exceeds {limit_name} {limit} of partition {self.name}",
            )

    def memory(self, text: str) -> str:
        match = _MEMORY.match(text.strip())
        if not match:
            raise RequestError(
                "memory", f"memory {text!r} is not like 500M, 4G or 2048 (megabytes)"
            )
        megabytes = int(match.group(1)) * _MEMORY_MB[match.group(2).upper()]
        node = self.info().memory_mb
        if node and megabytes > node:
            raise LimitError(
                "memory",
                f"memory {text} exceeds the {node}M of memory of a node "
                f"in partition {self.name}",
            )
        return text.strip().upper()


def _integer(request: dict, key: str, minimum: int) -> int | None:
    text = request.get(key)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise RequestError(key, f"{key} must be a whole number, not {text!r}")
    if value < minimum:
        raise RequestError(key, f"{key} must be at least {minimum}, not {value}")
    return value


def _word(key: str, value: str) -> str:
    if not _WORD.match(value):
        raise RequestError(
            key, f"{key} {value!r} may only hold letters, digits and _.+-"
        )
    return value


def _first(configured, live):
    return live if configured is None else configured


def _environment(section) -> Environment:
    return Environment(
        name=section.getSectionName(),
        description=section.description or "",
        path=section.path or "",
        modules=section.modules or "",
        add_to_path=section.add_to_path,
        prologue=section.prologue or "",
    )
