"""Fuzzing what zeo, papa and dispatch read from files (and names).

The persistent client cache, recipes and the three daemons' configuration
files: a damaged or hostile file gives the documented error (or, for the
cache, is set aside), never a traceback or data that was not written.
"""

import json
import os
import pathlib
import re
import tempfile

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dispatch.errors import CommandError
from dispatch.runtime.supervisor import load_configuration
from papa.__main__ import Error as PapaError
from papa.__main__ import load_settings, parse_arguments
from tests.fuzz.checks import (
    check_cache_bytes,
    check_dispatch_conf,
    check_papa_conf,
    check_program_name,
    check_recipe,
    check_zeo_conf,
    resealed,
)
from zeo.clientstorage.cache import ClientCache, _parse_cache_file
from zeo.storageserver.config import load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]

tids = st.integers(min_value=1, max_value=2**40).map(lambda n: n.to_bytes(8, "big"))
records = st.dictionaries(
    st.binary(min_size=8, max_size=8),
    st.tuples(tids, st.binary(max_size=200)),
    max_size=12,
)


def _written_cache(directory, contents, last_tid):
    """The bytes of a cache file ClientCache wrote holding *contents*."""
    path = os.path.join(directory, "written.zec")
    cache = ClientCache(path, size=10**7)
    for oid, (start, data) in contents.items():
        cache.store(oid, start, None, data)
    cache.set_last_tid(last_tid)
    cache.close()
    with open(path, "rb") as file:
        return file.read()


@given(records, tids, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255))))
def test_a_damaged_cache_file_is_refused_or_read_as_written(contents, last_tid, flips):
    with tempfile.TemporaryDirectory() as directory:
        content = _written_cache(directory, contents, last_tid)
        damaged = bytearray(content)
        for position, value in flips:
            damaged[position % len(damaged)] = value
        try:
            tid, read = _parse_cache_file(bytes(damaged))
        except ValueError:
            assert bytes(damaged) != content
            return
        # The checksum guards every byte: what is read is what was written.
        assert tid == last_tid
        assert {oid: (start, data) for oid, start, _, data in read} == contents


@given(
    records,
    tids,
    st.integers(0, 10**6),
    st.integers(0, 255),
    st.integers(0, 10**6),
)
@example({}, b"\0" * 7 + b"\1", 20, 255, 0)  # a huge record count
def test_a_well_checksummed_but_mangled_cache_file_is_refused_or_well_formed(
    contents, last_tid, position, value, cut
):
    with tempfile.TemporaryDirectory() as directory:
        content = bytearray(_written_cache(directory, contents, last_tid))
        body = content[:-8]
        body[position % len(body)] = value
        body = body[: len(body) - cut % 9]
        # Re-seal it, as a bug in a writer would: only structure checks remain.
        check_cache_bytes(resealed(body))


@given(st.binary(max_size=300))
@example(b"")
@example(b"ZPC1" + bytes(30))
def test_opening_any_file_as_a_cache_loads_it_or_sets_it_aside_intact(content):
    try:
        _parse_cache_file(content)
        readable = True
    except ValueError:
        readable = False
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "c.zec")
        with open(path, "wb") as file:
            file.write(content)
        cache = ClientCache(path)
        cache.close()
        if readable:
            assert not os.path.exists(path + ".bad")
        else:
            # Never lost: the bad file is kept for a look, byte for byte.
            with open(path + ".bad", "rb") as file:
                assert file.read() == content
            assert len(cache) == 0


# -- recipes ----------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 20),
        st.text(max_size=10),
        st.sampled_from(["1", "2", "start", "error", "queue", "output"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    ["1", "2", "3", "start", "error", "queue", "output", "parameters"]
                ),
                st.text(max_size=5),
            ),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@given(st.one_of(json_values, st.text(max_size=200), st.binary(max_size=100)))
@example('{"1": {"queue": "q", "output": [1]}, "start": [[1, []]]}')
@example('{"start": [[1, []]], "1": {"queue": "q", "output": 1}}')
@example(b"\x80")  # found here: was a UnicodeDecodeError
@example({"\u00b9": None})  # found here: "¹".isdigit() but int() refuses it
def test_any_recipe_is_accepted_or_refused_with_a_recipe_error(source):
    if not isinstance(source, (str, bytes, dict)):
        source = json.dumps(source)  # what a recipe file holding it gives
    check_recipe(source)


# -- configuration files ----------------------------------------------------

ZEO_KEYS = [
    "address",
    "msgpack",
    "read-only",
    "invalidation-queue-size",
    "invalidation-age",
    "transaction-timeout",
    "client-conflict-resolution",
    "pid-filename",
    "path",
    "blob-dir",
    "level",
    "instances",
    "port",
    "state-dir",
    "zeo",
    "papa",
    "restart-backoff",
]
config_values = st.one_of(
    st.sampled_from(
        ["", "-1", "0", "1e400", "true", "maybe", ":", "[::1]:x", "x" * 300]
    ),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30),
)
edits = st.lists(
    st.one_of(
        st.tuples(st.just("delete"), st.integers(0, 100)),
        st.tuples(st.just("duplicate"), st.integers(0, 100)),
        st.tuples(
            st.just("set"),
            st.integers(0, 100),
            st.sampled_from(ZEO_KEYS),
            config_values,
        ),
        st.tuples(st.just("raw"), st.integers(0, 100), config_values),
    ),
    max_size=4,
)


def _edited(text, changes):
    lines = text.splitlines()
    for change in changes:
        where = change[1] % (len(lines) + 1)
        if change[0] == "delete" and lines:
            del lines[where % len(lines)]
        elif change[0] == "duplicate" and lines:
            lines.insert(where, lines[where % len(lines)])
        elif change[0] == "set":
            lines.insert(where, f"  {change[2]} {change[3]}")
        elif change[0] == "raw":
            lines.insert(where, change[2])
    return "\n".join(lines) + "\n"


@given(edits)
def test_a_broken_zeo_conf_is_a_configuration_error(changes):
    check_zeo_conf(_edited((ROOT / "conf" / "zeo.conf").read_text(), changes))


@given(edits)
def test_a_broken_papa_conf_is_reported_as_papa_reports_errors(changes):
    text = _edited((ROOT / "conf" / "papa.conf").read_text(), changes)
    with tempfile.TemporaryDirectory() as directory:
        check_papa_conf(directory, text)


@given(edits)
def test_a_broken_dispatch_conf_is_a_usage_error(changes):
    text = _edited((ROOT / "conf" / "dispatch.conf").read_text(), changes)
    with tempfile.TemporaryDirectory() as directory:
        check_dispatch_conf(directory, text)


# Found by atheris: ZConfig checks a log format by formatting a record, and
# a field it does not know (or of another type) came out as a traceback.
@pytest.mark.parametrize("log_format", ["%(m\u00ffge)s", "%(message)d"])
def test_a_bad_log_format_is_each_daemons_configuration_error(
    log_format, tmp_path, monkeypatch
):
    import ZConfig

    monkeypatch.chdir(tmp_path)  # conf/zeo.conf names files in var/
    (tmp_path / "var").mkdir()

    def broken(name):
        text = (ROOT / "conf" / name).read_text()
        return re.sub(r"(?m)^(\s*format) .*$", rf"\1 {log_format}", text, count=1)

    with pytest.raises(ZConfig.ConfigurationError, match="bad log format"):
        load_config(text=broken("zeo.conf"))
    path = tmp_path / "papa.conf"
    path.write_text(broken("papa.conf"))
    with pytest.raises(PapaError, match="bad log format"):
        load_settings(parse_arguments(["-C", str(path)]))
    path = tmp_path / "dispatch.conf"
    path.write_text(broken("dispatch.conf"))
    with pytest.raises(CommandError, match="bad log format") as error:
        load_configuration(str(path))
    assert error.value.status == 2


# -- names read back from papa -------------------------------------------


@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda run, node, message: f"dispatch-step.{run}.{node}.{message}",
            st.text(max_size=10),
            st.one_of(st.integers(0, 99).map(str), st.text(max_size=3)),
            st.text(max_size=10),
        ),
    )
)
@example("dispatch-step.run.\u00b9.message")  # found: "¹".isdigit(), int() refuses
def test_any_papa_process_name_is_a_step_program_or_none(name):
    check_program_name(name)
