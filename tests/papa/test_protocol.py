"""The sans-IO line protocol, command table, output ring and process specs, fed bytes."""

import pytest

from papa import commands
from papa.connection import encode_request
from papa.errors import Error
from papa.output import CLOSED, STDERR, STDOUT, OutputRing
from papa.process import ProcessSpec, parse_size
from papa.protocol import (
    BANNER,
    CommandStream,
    Line,
    LineTooLong,
    batch,
    closed_record,
    escape,
    output_record,
    tokenize,
    unescape,
)


def test_banner_and_replies_are_papas_bytes():
    assert BANNER == b'Papa is home. Type "help" for commands.\n> '
    assert CommandStream.reply("x") == b"x\n> "
    assert CommandStream.reply("x\n") == b"x\n> "
    assert CommandStream.reply(None) == b"\n> "
    assert CommandStream.reply("") == b"\n> "
    assert CommandStream.error("boom") == b"Error: boom\n> "


def test_lines_are_split_stripped_and_decoded_with_replacement():
    stream = CommandStream()
    assert stream.receive_data(b"  get a \r\nlis") == [Line("get a")]
    assert stream.receive_data(b"t values\n\n") == [Line("list values"), Line("")]
    assert Line is str
    assert stream.receive_data(b"set x \xff\n") == [Line("set x \ufffd")]


def test_an_oversized_line_is_reported_once_and_skipped():
    stream = CommandStream(max_line_bytes=10)
    events = stream.receive_data(b"x" * 25)
    assert events == [LineTooLong(10)]
    assert stream.receive_data(b"y" * 30) == []
    assert stream.receive_data(b"zz\nget a\n") == [Line("get a")]
    assert stream.receive_data(b"a" * 11 + b"\nget b\n") == [
        LineTooLong(10),
        Line("get b"),
    ]


def test_tokenize_follows_papa():
    assert tokenize("set  a   b") == ["set", "a", "b"]
    assert tokenize("set a\\ b c") == ["set", "a b", "c"]
    assert tokenize("set a\\ \\ b") == ["set", "a  b"]
    # A trailing escaped space stays in the last, unterminated word.
    assert tokenize("set a b\\") == ["set", "a", "b "]
    # Without escapes a backslash elsewhere is literal.
    assert tokenize(r"m p x echo a\nb") == ["m", "p", "x", "echo", r"a\nb"]


def test_escapes_round_trip_newlines_backslashes_and_error_prefix():
    for text in ["a\nb", "Error: disk full", "ends\\", "a b", "\\n", "E", "x\r\ny"]:
        line = "set k " + escape(text)
        assert tokenize(line, escapes=True) == ["set", "k", text]
        assert unescape(escape(text)) == text
    assert not escape("Error: x").startswith("Error:")
    assert "\n" not in escape("a\nb")


@pytest.mark.parametrize("escapes", [True, False])
def test_client_request_lines_split_back_into_the_same_words(escapes):
    """The client's fast path (no escaping when none is needed) and its
    escaping path both give lines the kernel splits into the words sent."""
    cases = [
        ["set", "k", "value 12"],
        ["get", "k"],
        ["set", "k", "a  b", "", "c"],
        ["m", "p", "x", "args=a b", "c"],
        ["set", "k", "Error: disk full"],
        ["set", "k", 12],
    ]
    if escapes:
        cases += [["set", "k", "a\nb"], ["set", "k", "x\\y z"], ["set", "k", "a\rb"]]
    for words in cases:
        line = encode_request(words, escapes)
        assert line.endswith(b"\n") and line.count(b"\n") == 1, line
        event = CommandStream().receive_data(line)[0]
        expected = [str(word) for word in words if word != ""]
        assert tokenize(event, escapes=escapes) == expected, line


def test_with_escapes_words_beginning_or_ending_with_a_space_stay_apart():
    # Found by fuzzing: "a\\ " followed by a separator used to glue "a " to
    # the next word, and a leading escaped space was stripped.
    words = ["set", "a ", " b", "  ", "c"]
    line = " ".join(escape(word) for word in words)
    assert tokenize(line, escapes=True) == words
    assert tokenize("set k b\\", escapes=True) == ["set", "k", "b "]


def test_words_are_stripped_of_other_whitespace_as_papa_does():
    # papa splits on spaces only and strips each word of other whitespace.
    assert tokenize("set  k\tx  \xa0v\t") == ["set", "k\tx", "v"]
    assert tokenize("get  k ") == ["get", "k"]
    assert tokenize("set k a\\ b\t", escapes=True) == ["set", "k", "a b"]


def test_client_refuses_newlines_for_a_plain_papa_kernel():
    with pytest.raises(Error, match="cannot receive newlines"):
        encode_request(["set", "k", "a\nb"], escapes=False)


def test_unescape_decodes_every_escape_left_to_right():
    assert unescape("a\\ b") == "a b"
    assert unescape("a\\\\n") == "a\\n"
    assert unescape("a\\n\\r\\E\\\\\\ ") == "a\n\rE\\ "
    assert unescape("keep\\q") == "keep\\q"
    assert unescape("end\\") == "end\\"


def test_watch_records_and_batch_framing():
    out = output_record("out", "t", 1.5, b"hi\n")
    assert out == b"out:t:1.5:3\nhi\n"
    closed = closed_record("t", 2.25, -15)
    assert closed == b"closed:t:2.25:-15"
    assert batch([out, closed]) == b"out:t:1.5:3\nhi\n\nclosed:t:2.25:-15\n] "


@pytest.mark.parametrize(
    "words, name",
    [
        (["l", "p"], "list processes"),
        (["lis", "proc"], "list processes"),
        (["list", "process"], "list processes"),
        (["LIST", "Values"], "list values"),
        (["m", "s"], "make socket"),
        (["s"], "set"),
        (["g"], "get"),
        (["w", "p"], "watch processes"),
        (["r", "v"], "remove values"),
        (["exit-if-idle"], "exit-if-idle"),
        (["q"], "quit"),
        (["h"], "help"),
    ],
)
def test_lookup_resolves_abbreviations_alphabetically(words, name):
    command, rest = commands.lookup([*words, "arg"])
    assert command.name == name
    assert rest == ["arg"]


@pytest.mark.parametrize(
    "words, message",
    [
        (["e"], 'You cannot abbreviate "exit-if-idle"'),
        (["exit"], 'You cannot abbreviate "exit-if-idle"'),
        (["frobnicate"], 'Unknown command "frobnicate"'),
        (["list"], '"list" must be followed by one of: processes, sockets, values'),
        (
            ["list", "x"],
            'Bad "list" command. The following word must be one of: '
            "processes, sockets, values",
        ),
        (["make", "processes"], 'Bad "make" command'),
    ],
)
def test_lookup_errors_are_papas(words, message):
    with pytest.raises(Error) as raised:
        commands.lookup(words)
    assert str(raised.value).startswith(message)


def test_help_derives_from_the_table():
    text = commands.general_help()
    for command in commands.COMMANDS:
        assert command.name in text
        assert command.summary in text
    assert "bufsize" in commands.topic_help(["m", "p"])
    assert commands.topic_help(["nope"]) == 'Unknown command "nope"\n'
    assert "list values" in commands.topic_help(["list"])


def test_ring_drops_whole_oldest_chunks_like_papa():
    ring = OutputRing(35)
    for index in range(10):
        ring.add(STDOUT, bytes([48 + index]) * 10)
    kept = ring.pending()
    assert [chunk.data for chunk in kept] == [b"7" * 10, b"8" * 10, b"9" * 10]
    assert ring.dropped_bytes == 70


def test_ring_keeps_one_oversized_chunk_whole():
    ring = OutputRing(35)
    ring.add(STDOUT, b"a" * 10)
    ring.add(STDERR, b"b" * 100)
    assert [chunk.data for chunk in ring.pending()] == [b"b" * 100]


def test_ring_acknowledge_forgets_only_what_was_sent():
    ring = OutputRing(1000)
    ring.add(STDOUT, b"one")
    sent = ring.pending()
    ring.add(STDOUT, b"two")
    ring.acknowledge(sent[-1].sequence)
    assert [chunk.data for chunk in ring.pending()] == [b"two"]
    timestamps = [chunk.timestamp for chunk in sent + ring.pending()]
    assert timestamps == sorted(set(timestamps))


def test_spill_keeps_everything_and_delivers_in_order(tmp_path):
    ring = OutputRing(30, str(tmp_path / "spill"))
    produced = [bytes([65 + index]) * 10 for index in range(20)]
    for data in produced:
        ring.add(STDOUT, data)
    ring.add(CLOSED, 0)
    received = []
    while len(ring):
        chunks = ring.pending()
        received.extend(chunks)
        ring.acknowledge(chunks[-1].sequence)
    assert [chunk.data for chunk in received if chunk.kind == STDOUT] == produced
    assert received[-1].kind == CLOSED
    assert ring.dropped_bytes == 0
    ring.close()
    assert not (tmp_path / "spill").exists()


def test_process_spec_parses_papa_options():
    spec, watch = ProcessSpec.from_words(
        [
            "web",
            "bufsize=64k",
            "env.A=1",
            'env.EMPTY=""',
            "env.B=",
            "watch=1",
            "sh",
            "-c",
            "x=1",
        ]
    )
    assert spec.name == "web"
    assert spec.bufsize == 65536
    assert spec.env == {"A": "1", "EMPTY": "", "B": ""}
    assert spec.args == ["sh", "-c", "x=1"]
    assert watch
    assert parse_size("1m") == 1048576
    assert parse_size("12") == 12


@pytest.mark.parametrize(
    "words, message",
    [
        ([], "Process requires a name"),
        (["x"], "No command"),
        (["x", "bufsize=1m"], "No command"),
        (["x", "rlimit.bogus=1", "sh"], 'Unknown rlimit "bogus"'),
        (["x", "rlimit.nofile=many", "sh"], "must be an integer"),
        (["x", "uid=no-such-user-here", "sh"], "is not a valid user name"),
        (["x", "gid=no-such-group-here", "sh"], "No such group"),
        (["x", "colour=red", "sh"], 'Unknown process option "colour"'),
        (["a:b", "sh"], "cannot contain"),
        (["x", "bufsize=lots", "sh"], "bufsize must be"),
    ],
)
def test_process_spec_errors_are_clear(words, message):
    with pytest.raises(Error) as raised:
        ProcessSpec.from_words(words)
    assert message in str(raised.value)


def test_batch_parts_are_the_batch_bytes():
    from papa.protocol import batch_parts, output_record_parts

    records = [
        output_record_parts("err", "n", 3.0, b"x" * 5),
        closed_record("n", 4.0, 1),
    ]
    assert b"".join(batch_parts(records)) == b"err:n:3.0:5\nxxxxx\nclosed:n:4.0:1\n] "
