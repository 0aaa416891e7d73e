"""The command table and handlers without a socket: rows in, parser and replies out."""

import pytest

from papa import commands
from papa.commands import CloseConnection, Command, CommandTable, Watch
from papa.commands.watch import collect_batch, drop_vanished
from papa.errors import Error
from papa.kernel import Tables
from papa.output import STDOUT, OutputRing
from papa.process import ManagedProcess, ProcessSpec
from papa.protocol import CommandStream


def _handler(kernel, stream, arguments):
    return "ran"


def _row(name, position, extension=False, abbreviable=True):
    return Command(
        tuple(name.split(" ")),
        "",
        f"summary of {name}",
        f"help of {name}",
        _handler,
        position,
        abbreviable,
        extension,
    )


def test_parser_abbreviations_and_help_all_derive_from_the_rows():
    table = CommandTable(
        [
            _row("list things", 1),
            _row("list tricks", 2, extension=True),
            _row("zap", 3, abbreviable=False),
        ]
    )
    # papa's words win over extensions: "l t" is "list things", not "tricks".
    command, rest = table.find(["l", "t", "x"])
    assert command.name == "list things" and rest == ["x"]
    assert table.find(["list", "tr"])[0].name == "list tricks"
    assert table.find(["zap"])[0].name == "zap"
    with pytest.raises(Error, match='You cannot abbreviate "zap"'):
        table.find(["z"])
    # Error texts list papa's own words only.
    with pytest.raises(Error, match='"list" must be followed by one of: things$'):
        table.find(["list"])
    lines = table.general_help().splitlines()
    assert lines[1:4] == [
        "    list things - summary of list things",
        "    list tricks - summary of list tricks",
        "    zap         - summary of zap",
    ]
    assert table.topic_help(["l", "tr"]) == "Usage: list tricks\n\nhelp of list tricks"


def test_a_command_registered_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        CommandTable([_row("set", 1), _row("set", 2)])


def test_help_lists_in_papas_order():
    names = [command.name for command in commands.COMMANDS]
    assert names[:9] == [
        "make socket",
        "make process",
        "list sockets",
        "list processes",
        "list values",
        "remove sockets",
        "remove processes",
        "remove values",
        "watch processes",
    ]
    assert names[-3:] == ["quit", "exit-if-idle", "help"]


def _run(tables, stream, line):
    command, arguments = commands.TABLE.find(line.split(" "))
    return command.handler(tables, stream, arguments)


def test_value_handlers_work_on_the_tables_and_the_stream_alone():
    tables, stream = Tables(), CommandStream()
    assert _run(tables, stream, "set greeting hello world") is None
    assert tables.values == {"greeting": "hello world"}
    assert _run(tables, stream, "g greeting") == "hello world"
    assert _run(tables, stream, "protocol escapes") == "escapes on"
    assert stream.escapes
    assert _run(tables, stream, "l v") == "greeting hello\\ world"
    with pytest.raises(Error, match="You cannot remove all variables"):
        _run(tables, stream, "remove values *")
    with pytest.raises(CloseConnection) as closing:
        _run(tables, stream, "quit")
    assert closing.value.final == b"ok\n"


def test_watch_handler_names_the_processes_and_leaves_streaming_to_the_session():
    tables, stream = Tables(), CommandStream()
    process = _captured("worker")
    tables.processes["worker"] = process
    outcome = _run(tables, stream, "watch processes work*")
    assert outcome == Watch("Watching 1", {"worker": process})
    with pytest.raises(Error, match="nobody not found"):
        _run(tables, stream, "watch processes nobody")


def _captured(name):
    process = ManagedProcess(ProcessSpec(name, ["/bin/true"]))
    process.output = OutputRing(1024)
    return process


def test_a_batch_holds_the_output_the_marks_and_the_ends():
    talker, quiet = _captured("talker"), _captured("quiet")
    talker.output.add(STDOUT, b"hi")
    talker._exited(3)
    records, marks, closed = collect_batch({"talker": talker, "quiet": quiet})
    assert records[0][1] == b"hi" and records[0][0].startswith(b"out:talker:")
    assert records[1].startswith(b"closed:talker:") and records[1].endswith(b":3")
    assert marks == {"talker": 2} and closed == ["talker"]


def test_a_removed_process_with_nothing_left_stops_being_watched():
    kept, removed = _captured("kept"), _captured("removed")
    woken = []
    removed.output.subscribe(woken.append)
    targets = {"kept": kept, "removed": removed}
    drop_vanished(targets, {"kept": kept}, woken.append)
    assert list(targets) == ["kept"]
    removed.output.add(STDOUT, b"late")
    assert woken == []  # unsubscribed


def test_the_old_import_paths_still_work():
    import papa.kernel
    import papa.session
    from papa.kernel import (  # noqa: F401
        CANCEL_GRACE_SECONDS,
        DEFAULT_PORT,
        LOOPBACK,
        Kernel,
        match,
        new_event_loop,
        run,
        serve,
        start_in_thread,
    )
    from papa.session import CloseConnection as SessionClose
    from papa.session import Session  # noqa: F401

    assert SessionClose is CloseConnection
    assert DEFAULT_PORT == 20202 and LOOPBACK == "127.0.0.1"
    assert match({"a.1": 1, "a.2": 2, "b": 3}, ["a.*"]) == ["a.1", "a.2"]
    kernel = papa.kernel.Kernel()
    assert kernel.values == {} and kernel.is_idle()
    assert kernel.slurm_settings is None and kernel.slurm_poller is None
    assert kernel.address is None  # not listening yet
    assert commands.TREE["list"]["values"].name == "list values"


def test_a_listing_is_the_matching_entries_one_a_line_sorted():
    from papa.commands.table import listing

    table = {"web.2": "b", "web.1": "a", "db": "c"}

    def line(name, entry):
        return f"{name}={entry}"

    assert listing(table, ["web.*"], line) == "web.1=a\nweb.2=b"
    assert listing(table, [], line) == "db=c\nweb.1=a\nweb.2=b"
    assert listing(table, ["nothing"], line) == ""


def test_a_with_block_closes_papas_client_objects_however_it_ends():
    from papa import Papa
    from papa.closing import ClosedOnExit
    from papa.watcher import Watcher

    class Closable(ClosedOnExit):
        closed = 0

        def close(self):
            self.closed += 1

    with Closable() as closable:
        assert closable.closed == 0
    assert closable.closed == 1
    with pytest.raises(KeyError), Closable() as closable:
        raise KeyError("inside")
    assert closable.closed == 1
    assert issubclass(Papa, ClosedOnExit) and issubclass(Watcher, ClosedOnExit)
