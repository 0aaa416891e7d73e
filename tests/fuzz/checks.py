"""What must hold for any input: the property checks of the fuzz targets.

The hypothesis tests (``test_*.py`` here) and the atheris targets
(``tests/fuzz/atheris_targets.py``) both feed their inputs to these plain
functions, so a property is written once whichever fuzzer makes the input.
Each function raises ``AssertionError`` (or lets an unexpected exception
out) when the property does not hold.
"""

import os
import zlib

from dispatch.errors import CommandError
from dispatch.runtime.supervisor import load_configuration
from dispatch.state.programs import parse_program_name
from dispatch.state.recipe import Recipe, RecipeError
from papa.__main__ import Error as PapaError
from papa.__main__ import load_settings, parse_arguments
from papa.protocol import CommandStream, LineTooLong, tokenize
from tests.fuzz.streams import chunks
from zeo.clientstorage.cachefile import FILE_END, _parse_cache_file
from zeo.exceptions import ProtocolError
from zeo.protocol import FrameDecoder, decoder, frame
from zeo.protocol.client import Announced, Broken, Callback, ClientSession
from zeo.protocol.server import (
    Call,
    Close,
    Connected,
    Refused,
    ServerSession,
    StatusRequested,
    is_call,
)
from zeo.protocol.signatures import SIGNATURES

METHODS = sorted(SIGNATURES)

# -- zeo frames and messages ------------------------------------------------


def check_frame_decoder_bounded(pieces, limit=1000):
    """Fed *pieces*, a ``FrameDecoder`` gives frames of at most *limit* bytes
    (or one ``ProtocolError``) and never holds more than a frame."""
    decoder_ = FrameDecoder(max_size=limit)
    for piece in pieces:
        try:
            for payload in decoder_.feed(piece):
                assert len(payload) <= limit
        except ProtocolError:
            return  # the connection is closed; nothing more is read
        assert decoder_.pending <= limit + 4


def check_message_decoder(protocol, client, data):
    """Any bytes decode to a 4-tuple with a str method, or ``ProtocolError``."""
    try:
        message = decoder(protocol, client=client)(data)
    except ProtocolError:
        return
    assert type(message) is tuple and len(message) == 4
    assert isinstance(message[2], str)


def server_events(session, pieces):
    """What *session* makes of *pieces*, registering as a storage would."""
    events = []
    for piece in pieces:
        for event in session.receive(piece):
            events.append(event)
            if type(event) is Connected:
                session.allow({"register"}, registered=False)
            elif is_call(event) and Call(*event).name == "register":
                session.allow(set(METHODS) - {"register"}, registered=True)
    return events


def check_server_session(protocol, pieces):
    """After the client's handshake, any *pieces* give only known events and
    nothing after a ``Close``; returns the events."""
    session = ServerSession(protocol)
    events = server_events(session, [frame(protocol)] + list(pieces))
    assert events[0] == Connected(protocol)
    kinds = {Connected, tuple, Refused, Close, StatusRequested}
    assert all(type(event) in kinds for event in events)
    closes = [i for i, event in enumerate(events) if type(event) is Close]
    assert closes in ([], [len(events) - 1])  # nothing after a close
    return events


class Slot:
    """Where the client session puts the outcome of one call."""

    def __init__(self):
        self.outcomes = []

    def set_result(self, result):
        self.outcomes.append(("result", result))

    def set_exception(self, exception):
        self.outcomes.append(("error", exception))


def check_client_session(protocol, stream, operational, calls=5):
    """A client session with *calls* calls pending survives any *stream* a
    server sends: only callbacks or one ``Broken``, every call answered at
    most once, no invalidation before the cache is verified."""
    session = ClientSession("fuzz")
    assert list(session.receive(frame(protocol))) == [Announced(protocol)]
    session.answer(protocol)
    if operational:
        session.verified()
    slots = {msgid: Slot() for msgid in range(calls)}
    for msgid, slot in slots.items():
        session.register(msgid, "ping", slot, None)
    events = list(session.receive(stream))
    assert all(type(event) in (Callback, Broken) for event in events)
    assert [type(e) for e in events].count(Broken) <= 1
    if events and type(events[-1]) is Broken:
        assert isinstance(events[-1].error, ProtocolError)
    for event in events:
        if type(event) is Callback and not operational:
            assert event.name != "invalidateTransaction"
    for slot in slots.values():
        assert len(slot.outcomes) <= 1  # a call is answered at most once
        for kind, value in slot.outcomes:
            assert kind == "result" or isinstance(value, Exception)
    answered = sum(len(slot.outcomes) for slot in slots.values())
    assert answered + len(session.pending) == len(slots)


# -- the persistent cache file ----------------------------------------------


def check_cache_bytes(content):
    """Any file content is refused with ``ValueError`` or reads as well
    formed records; returns ``(last_tid, records)`` or None."""
    try:
        last_tid, records = _parse_cache_file(content)
    except ValueError:
        return None
    assert last_tid is None or len(last_tid) == 8
    for oid, start, end, data in records:
        assert len(oid) == 8 and len(start) == 8
        assert end is None or end > start
        assert len(data) <= len(content)
    return last_tid, records


def resealed(body):
    """*body* sealed as a cache file, as a buggy writer would: its checksum
    is right, so only the structure checks stand between it and a reader."""
    return bytes(body) + FILE_END + zlib.crc32(body).to_bytes(4, "big")


# -- recipes, configuration files, names ------------------------------------


def check_recipe(source):
    """A recipe (text, bytes or dict) is a ``Recipe`` that survives its own
    JSON, or a ``RecipeError``."""
    try:
        recipe = Recipe(source)
        recipe.validate()
    except RecipeError as error:
        assert str(error).startswith("Invalid recipe:")
        return
    assert Recipe(recipe.to_json()) == recipe


def check_zeo_conf(text):
    """A zeo.conf is loaded with storages or is a ZConfig error."""
    import ZConfig

    from zeo.storageserver.config import load_config

    try:
        config = load_config(text=text)
    except ZConfig.ConfigurationError:
        return
    assert config.zeo is not None and config.storages


def written(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as file:
        file.write(text)
    return path


def check_papa_conf(directory, text):
    """A papa.conf gives settings or papa's own error naming the file."""
    path = written(directory, "papa.conf", text)
    try:
        settings = load_settings(parse_arguments(["-C", path]))
    except PapaError as error:
        assert path in str(error) or "Unix socket" in str(error)
        return
    assert isinstance(settings["port"], int)


def check_dispatch_conf(directory, text):
    """A dispatch.conf gives services or a usage error naming the file."""
    path = written(directory, "dispatch.conf", text)
    try:
        config = load_configuration(path)
    except CommandError as error:
        assert error.status == 2 and path in str(error)
        return
    assert all(section.instances >= 0 for section in config.services)


def check_program_name(name):
    """Any papa process name is a step program or None."""
    parsed = parse_program_name(name)
    if parsed is not None:
        run, node, message = parsed
        assert name.startswith(f"dispatch-step.{run}.") and name.endswith(message)
        assert isinstance(node, int) and node >= 0


# -- papa request lines -----------------------------------------------------


def expected_events(data, limit):
    """What the reader must give: a model of papa's line framing."""
    events = []
    *lines, unfinished = data.split(b"\n")
    for line in lines:
        if len(line) > limit:
            events.append(LineTooLong(limit))
        else:
            events.append(line.decode("utf-8", errors="replace").strip())
    if len(unfinished) > limit:
        events.append(LineTooLong(limit))  # reported before its newline comes
    return events


def _collapsed(events):
    result = []
    for event in events:
        if isinstance(event, LineTooLong) and result and result[-1] == event:
            continue
        result.append(event)
    return result


def check_line_reader(data, cuts, limit):
    """However *data* is cut, papa's reader gives the lines of the model and
    never holds more than a line; returns the lines."""
    stream = CommandStream(max_line_bytes=limit)
    events = []
    for piece in chunks(data, cuts):
        events.extend(stream.receive_data(piece))
        # Never more than a line (plus the piece being looked at) is held.
        assert len(stream._buffer) <= limit + len(piece)
    # A long line cut into pieces is reported once, when the limit is passed.
    assert _collapsed(events) == _collapsed(expected_events(data, limit))
    return [event for event in events if isinstance(event, str)]


def check_tokenize(line, escapes):
    """Any line splits into words without failing."""
    words = tokenize(line, escapes)
    # papa 1.0.6 strips each word with str.strip, so a word of other
    # whitespace (\x1f) becomes an empty word there too: only types hold.
    assert all(isinstance(word, str) for word in words)
    assert len(words) <= line.count(" ") + 1
