"""papa's command set: one table from which lookup, abbreviations and help derive.

Each :class:`Command` names its words (``("list", "processes")``), its
arguments, a one-line summary, its help text and the name of the handler
method on :class:`papa.session.Session`.  Adding a command means adding one
row here and one handler.

Lookup follows papa 1.0.6: words are lower-cased; a word either matches
exactly or resolves to the first command, in alphabetical order, that starts
with it (``l p`` is ``list processes``, ``s`` is ``set``); ``exit-if-idle``
cannot be abbreviated; the error texts are papa's.
"""

from __future__ import annotations

import dataclasses

from .errors import Error


@dataclasses.dataclass(frozen=True)
class Command:
    """One row of the command table."""

    words: tuple[str, ...]
    arguments: str
    summary: str
    help: str
    handler: str
    abbreviable: bool = True
    # Our additions to papa's set lose every abbreviation contest against
    # papa's own words, so "l p" stays "list processes".
    extension: bool = False

    @property
    def name(self) -> str:
        return " ".join(self.words)

    @property
    def method(self) -> str:
        """The Session method that runs this command."""
        return _METHODS[self.handler]


PATTERN_HELP = """
Names may end in '*' to match every name with that prefix ('*' alone matches
all).  Examples: nginx, worker.*"""

COMMANDS = (
    Command(
        ("make", "socket"),
        "NAME [family=F] [type=T] [backlog=N] [path=P] [umask=U] [host=H] "
        "[port=N] [interface=I] [reuseport=1]",
        "Create a socket to be used by processes",
        """Create a named socket the kernel holds for its processes.

Options:
    family    unix, inet or inet6 (unix when path is given, else inet)
    type      stream, dgram, raw, rdm or seqpacket (default stream)
    backlog   listen backlog (default 5)
    path      absolute path of a Unix socket; an existing socket file is
              replaced, any other file is left alone and refused
    umask     umask of the socket file, as a DECIMAL number (papa's rule)
    host      address to bind (default 127.0.0.1, or 0.0.0.0 with interface)
    port      port to bind (default 0: the system picks one)
    interface bind to one network interface only (SO_BINDTODEVICE)
    reuseport each process using $(socket.NAME.fileno) gets its own socket
              on the same port (SO_REUSEPORT)

Making a socket again with the same options returns the existing one.
Examples:
    make socket web port=8080
    make socket app path=/run/app.sock umask=63""",
        "make_socket",
    ),
    Command(
        ("make", "process"),
        "NAME [option=value…] EXECUTABLE [ARGUMENT…]",
        "Launch a process",
        """Launch a process and capture its output.

Options (before the executable):
    working_dir  absolute directory to start in (default: the kernel's)
    uid, gid     user and group (name or number) to run as
    bufsize      output kept for watchers, e.g. 64k or 1m (default 1m);
                 0 captures nothing
    stdout       0 sends stdout to /dev/null
    stderr       0 sends stderr to /dev/null, stdout merges it into stdout
    spill        1 writes output beyond bufsize to a file instead of
                 dropping it, so a slow watcher loses nothing
    watch        1 replies with the process line, then watches it
    shell        1 runs the command through /bin/sh
    env.NAME     an environment variable; the environment is exactly the
                 env. options given (none: an empty environment)
    rlimit.NAME  a resource limit (soft and hard), e.g. rlimit.nofile=1024

Arguments may contain $(socket.NAME.port) and $(socket.NAME.fileno).
Making a process again with the same options returns the existing one.
Examples:
    make process web bufsize=64k /usr/bin/python3 -m http.server $(socket.web.port)
    make process sleeper env.PATH=/usr/bin sleep 60""",
        "make_process",
    ),
    Command(
        ("list", "sockets"),
        "[NAME…]",
        "List sockets by name",
        "List sockets, one line each." + PATTERN_HELP,
        "list_sockets",
    ),
    Command(
        ("list", "processes"),
        "[NAME…]",
        "List processes by name",
        "List processes, one line each (running or finished, until the\n"
        "output is consumed or the process removed)." + PATTERN_HELP,
        "list_processes",
    ),
    Command(
        ("list", "values"),
        "[NAME…]",
        "List values by name",
        "List values as 'NAME VALUE' lines." + PATTERN_HELP,
        "list_values",
    ),
    Command(
        ("remove", "sockets"),
        "[NAME…]",
        "Close and remove sockets by name",
        "Close sockets; processes that inherited them keep them.\n"
        "With no name, every socket is removed (papa's rule)." + PATTERN_HELP,
        "remove_sockets",
    ),
    Command(
        ("remove", "processes"),
        "[NAME…]",
        "Stop keeping the output of processes by name",
        "Stop keeping the output of processes.  A finished process goes at once,\n"
        "a running one when it ends; it is never killed.\n"
        "With no name, every process is removed (papa's rule)." + PATTERN_HELP,
        "remove_processes",
    ),
    Command(
        ("remove", "values"),
        "NAME…",
        "Remove values by name",
        "Remove values.  '*' alone is refused, even among other names." + PATTERN_HELP,
        "remove_values",
    ),
    Command(
        ("watch", "processes"),
        "NAME…",
        "Receive the output and exit codes of processes",
        """Receive the output and exit codes of processes.

The reply is 'Watching N', then batches of records ending in '] ':
    out:NAME:TIMESTAMP:LENGTH  followed by LENGTH bytes of stdout
    err:NAME:TIMESTAMP:LENGTH  followed by LENGTH bytes of stderr
    closed:NAME:TIMESTAMP:EXITCODE
After each batch send one line to acknowledge it ('-' will do), or 'q' to
acknowledge and stop watching.  Unacknowledged output is sent again to the
next watcher."""
        + PATTERN_HELP,
        "watch_processes",
    ),
    Command(
        ("list", "partitions"),
        "",
        "List Slurm partitions with their limits and free resources",
        """List the Slurm partitions jobs may use (the configured ones, else all
that sinfo shows), one line each: the configured description and what sinfo
says now: nodes and CPUs idle/allocated/total, memory per node (MB), the
largest nprocs and ngpus a job may ask for, and the time limit.""",
        "list_partitions",
        extension=True,
    ),
    Command(
        ("cancel", "processes"),
        "NAME…",
        "End processes: scancel Slurm jobs, SIGTERM then SIGKILL local ones",
        """End processes and wait until they have ended (an extension: papa never
stops processes).  A Slurm job is cancelled with scancel; a local child gets
SIGTERM, then SIGKILL after 10 s.  The reply lists 'NAME exit_code=N'.
The entries stay, with their output, until removed or watched."""
        + PATTERN_HELP,
        "cancel_processes",
        extension=True,
    ),
    Command(
        ("set",),
        "NAME [VALUE…]",
        "Set a named value",
        "Set a named value; with no value the name is cleared.\n"
        "Examples:\n    set count 5\n    set count",
        "set_value",
    ),
    Command(
        ("get",),
        "NAME",
        "Get a named value",
        "Get a named value (an empty reply if it is not set).\nExample:\n    get count",
        "get_value",
    ),
    Command(
        ("protocol",),
        "[escapes]",
        "Show or switch on protocol extensions",
        """Show the protocol extensions this kernel offers, or switch one on for
this connection.

    escapes  backslash escapes in requests (\\n newline, \\\\ backslash) and in
             value, socket and process listings, so newlines and values
             beginning with 'Error:' travel intact""",
        "protocol",
    ),
    Command(
        ("quit",), "", "Close the client session", "Close this connection.", "quit"
    ),
    Command(
        ("exit-if-idle",),
        "",
        "Exit papa if there are no processes, sockets or values",
        "Exit the kernel once no connection is left, if it holds no process,\n"
        "socket or value.  Cannot be abbreviated.",
        "exit_if_idle",
        abbreviable=False,
    ),
    Command(
        ("help",),
        "[COMMAND…]",
        'Type "help <command>" for more information',
        "Show the commands, or the help of one command.",
        "help",
    ),
)


_METHODS = {command.handler: f"do_{command.handler}" for command in COMMANDS}


def _build_tree(commands) -> dict:
    tree: dict = {}
    for command in commands:
        node = tree
        for word in command.words[:-1]:
            node = node.setdefault(word, {})
        node[command.words[-1]] = command
    return tree


TREE = _build_tree(COMMANDS)


def _build_abbreviations(node: dict, table: dict) -> None:
    """Map every prefix of every word to what it resolves to (or an error)."""
    resolved: dict[str, str] = {}
    # Alphabetical first wins, and papa's words win over extensions.
    for key in sorted(
        node, key=lambda key: (_is_extension(node[key]), key), reverse=True
    ):
        for length in range(1, len(key) + 1):
            resolved[key[:length]] = key
    for key in node:
        resolved[key] = key  # an exact word always wins
    table[id(node)] = resolved
    for entry in node.values():
        if isinstance(entry, dict):
            _build_abbreviations(entry, table)


def _is_extension(entry) -> bool:
    if isinstance(entry, Command):
        return entry.extension
    return all(_is_extension(child) for child in entry.values())


_ABBREVIATIONS: dict[int, dict[str, str]] = {}
# Words already resolved, as typed ("l", ("l", "v")): most requests are
# answered from here.  Bounded, since clients choose the spelling.
_RESOLVED: dict = {}
_RESOLVED_LIMIT = 4096
_build_abbreviations(TREE, _ABBREVIATIONS)


def lookup(
    words: list[str], allow_partial: bool = False
) -> tuple[Command | dict, list[str]]:
    """Resolve the leading words of a request to a command.

    Returns the command (or, with ``allow_partial``, a group such as
    ``list``) and the remaining words.  Raises :class:`Error` with papa's
    texts for unknown or incomplete commands.
    """
    if not allow_partial and words:
        hit = _RESOLVED.get(words[0])
        if hit is not None:
            return hit, words[1:]
        if len(words) > 1:
            hit = _RESOLVED.get((words[0], words[1]))
            if hit is not None:
                return hit, words[2:]
    node: Command | dict = TREE
    group: str | None = None
    index = 0
    while type(node) is dict:
        if index == len(words):
            if allow_partial and group is not None:
                return node, []
            raise Error(f'"{group}" must be followed by one of: {_word_list(node)}')
        word = words[index].lower()
        index += 1
        key = _resolve(node, word, group)
        node = node[key]
        group = key if group is None else f"{group} {key}"
    if len(_RESOLVED) < _RESOLVED_LIMIT:
        _RESOLVED[words[0] if index == 1 else tuple(words[:index])] = node
    return node, words[index:]


def _resolve(node: dict, word: str, group: str | None) -> str:
    key = _ABBREVIATIONS[id(node)].get(word)
    if key is not None:
        entry = node[key]
        if key != word and isinstance(entry, Command) and not entry.abbreviable:
            raise Error(f'You cannot abbreviate "{key}"')
        return key
    if group is not None:
        raise Error(
            f'Bad "{group}" command. The following word must be one of: '
            + _word_list(node)
        )
    raise Error(f'Unknown command "{word}"')


def _word_list(node: dict) -> str:
    """The words of a group for an error text: papa's own where it has some,
    so papa's error texts stay byte for byte the same (``help`` lists all)."""
    papa_words = [key for key in node if not _is_extension(node[key])]
    return ", ".join(sorted(papa_words or node))


def general_help() -> str:
    """The reply to a bare ``help``, generated from the table."""
    width = max(len(command.name) for command in COMMANDS)
    lines = ["Possible commands are:"]
    for command in COMMANDS:
        lines.append(f"    {command.name.ljust(width)} - {command.summary}")
    lines.append("")
    lines.append("All commands may be abbreviated: type at least one character of each")
    lines.append('word ("l p" is "list processes"), except exit-if-idle.')
    lines.append("")
    lines.append(
        "After a 'watch' command, enter '-' and a return to receive more output."
    )
    return "\n".join(lines)


def topic_help(words: list[str]) -> str:
    """The reply to ``help WORD…``; unknown topics are not an error (papa)."""
    try:
        node, _ = lookup(words, allow_partial=True)
    except Error as exc:
        return f"{exc}\n"
    if isinstance(node, Command):
        usage = f"Usage: {node.name} {node.arguments}".rstrip()
        return f"{usage}\n\n{node.help}"
    members = sorted(node.values(), key=lambda command: command.name)
    lines = [f"{command.name} - {command.summary}" for command in members]
    lines.append("")
    lines.append(f'Type "help {members[0].words[0]} <word>" for details.')
    return "\n".join(lines)
