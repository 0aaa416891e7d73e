"""Coverage-guided fuzzing with atheris (libFuzzer) of the same decoders.

    python -m tests.fuzz.atheris_targets TARGET [libFuzzer flags] [CORPUS...]

TARGET is one of ``TARGETS`` below, or ``all`` (the first byte of an input
picks the target: one process fuzzes them all, as ``make test`` does).  Each
target feeds the bytes libFuzzer makes to the property checks the
hypothesis tests use (``tests/fuzz/checks.py``); a failed check or an
unexpected exception is a crash, saved by libFuzzer as ``crash-*`` (see
``-artifact_prefix``).  The seeds in ``tests/fuzz/corpus/TARGET`` (real
frames recorded from a runzeo session, a real cache file, the example
recipes, ``conf/*.conf``; ``python -m tests.fuzz.atheris_seeds`` remakes
them) are read first; new inputs go to the first CORPUS given, or to a
temporary directory; given only files, it replays them.  ``make fuzz-atheris`` runs each target ``FUZZ_RUNS``
times.

Most targets read their first byte as options (an encoding, a side, where
the network cuts the stream) and the rest as the input.
"""

import atexit
import gc
import pathlib
import shutil
import sys
import tempfile
import types

import atheris

from tests.fuzz import checks

# The modules whose code libFuzzer's coverage follows.  atheris's
# instrument_imports() takes whole top-level packages (all of zeo, papa and
# dispatch, slow to instrument and noisy as coverage), so the functions of
# exactly these modules are instrumented once they are imported.
INSTRUMENTED = (
    "zeo.protocol",
    "zeo.clientstorage.cache",
    "zeo.clientstorage.cachefile",
    "zeo.storageserver.config",
    "papa.protocol",
    "papa.__main__",
    "dispatch.state.recipe",
    "dispatch.state.programs",
    "dispatch.runtime.supervisor",
)


def _instrument(prefixes):
    """Instrument every function (and method) defined in a module named by
    *prefixes* (or inside one); return how many."""
    functions = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, types.FunctionType)
        and any(
            (obj.__module__ or "") == prefix
            or (obj.__module__ or "").startswith(prefix + ".")
            for prefix in prefixes
        )
    ]
    for function in functions:
        atheris.instrument_func(function)
    return len(functions)


CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
LINE_LIMIT = 256  # papa's reader, small so long lines are met often
SCRATCH = tempfile.mkdtemp(prefix="zeopapa-atheris-")
atexit.register(shutil.rmtree, SCRATCH, True)


def _options(data):
    """The options byte and the input after it."""
    return (data[0], data[1:]) if data else (0, b"")


def _pieces(data, size):
    """*data* cut every *size* bytes, as a network may deliver it."""
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def _text(data):
    return data.decode("utf-8", errors="replace")


def zeo_frames(data):
    options, stream = _options(data)
    checks.check_frame_decoder_bounded(_pieces(stream, options + 1))


def zeo_messages(data):
    options, payload = _options(data)
    protocol = b"Z5" if options & 1 else b"M5"
    checks.check_message_decoder(protocol, bool(options & 2), payload)


def zeo_server(data):
    options, stream = _options(data)
    protocol = b"Z5" if options & 1 else b"M5"
    # Whole frames the way a client sends them, then cut: the session
    # reassembles them itself.
    checks.check_server_session(protocol, _pieces(stream, (options >> 1) + 1))


def zeo_client(data):
    options, stream = _options(data)
    protocol = b"Z5" if options & 1 else b"M5"
    checks.check_client_session(protocol, stream, operational=bool(options & 2))


def cache_file(data):
    options, content = _options(data)
    checks.check_cache_bytes(checks.resealed(content) if options & 1 else content)


def recipe(data):
    checks.check_recipe(data)


def zeo_conf(data):
    checks.check_zeo_conf(_text(data))


def papa_conf(data):
    checks.check_papa_conf(SCRATCH, _text(data))


def dispatch_conf(data):
    checks.check_dispatch_conf(SCRATCH, _text(data))


def papa_lines(data):
    options, stream = _options(data)
    size = (options >> 1) + 1
    cuts = range(size, len(stream), size)
    for line in checks.check_line_reader(stream, cuts, LINE_LIMIT):
        checks.check_tokenize(line, escapes=bool(options & 1))


def program_names(data):
    checks.check_program_name(_text(data))


TARGETS = {
    "zeo-frames": zeo_frames,
    "zeo-messages": zeo_messages,
    "zeo-server": zeo_server,
    "zeo-client": zeo_client,
    "cache-file": cache_file,
    "recipe": recipe,
    "zeo-conf": zeo_conf,
    "papa-conf": papa_conf,
    "dispatch-conf": dispatch_conf,
    "papa-lines": papa_lines,
    "program-names": program_names,
}
NAMES = sorted(TARGETS)


def every_target(data):
    """The first byte picks the target, the rest is its input."""
    if data:
        TARGETS[NAMES[data[0] % len(NAMES)]](data[1:])


def _all_seeds(directory):
    """The seeds of every target, each behind its target's selector byte."""
    for index, name in enumerate(NAMES):
        for seed in sorted((CORPUS / name).glob("*")):
            target = directory / f"{name}-{seed.name}"
            target.write_bytes(bytes([index]) + seed.read_bytes())


# Defaults a flag given on the command line overrides: a hang is an input
# slower than 30 s, and memory is bounded.
DEFAULT_FLAGS = ["-timeout=30", "-rss_limit_mb=2048", "-max_len=65536"]


def main(argv):
    if len(argv) < 2 or argv[1] not in [*TARGETS, "all"]:
        sys.exit(f"usage: {argv[0]} {{{','.join(NAMES)},all}} [libFuzzer flags] [DIR]")
    name, rest = argv[1], argv[2:]
    flags = [arg for arg in rest if arg.startswith("-")]
    corpora = [arg for arg in rest if not arg.startswith("-")]
    if not corpora:
        corpora = [tempfile.mkdtemp(dir=SCRATCH)]  # new inputs, thrown away
    if name == "all":
        seeds = pathlib.Path(tempfile.mkdtemp(dir=SCRATCH))
        _all_seeds(seeds)
        function = every_target
    else:
        seeds = CORPUS / name
        function = TARGETS[name]
    given = {flag.split("=")[0] for flag in flags}
    flags += [flag for flag in DEFAULT_FLAGS if flag.split("=")[0] not in given]
    print(f"INFO: instrumented {_instrument(INSTRUMENTED)} functions", file=sys.stderr)
    if all(pathlib.Path(path).is_file() for path in corpora):
        inputs = corpora  # replay these inputs (a crash-* file) and stop
    else:
        inputs = [*corpora, str(seeds)]
    atheris.Setup([f"{argv[0]}:{name}", *flags, *inputs], function)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
