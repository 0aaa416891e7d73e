"""The command a single-user server's Slurm job runs.

The hub cannot choose the server's port: the server runs on a node the hub
does not pick.  batchspawner installs ``batchspawner-singleuser`` in every
environment, which picks a port and posts it to the hub's API.  Here the job
runs a few lines of standard-library Python instead (any ``python3`` will
do, nothing to install on the nodes): they pick a free port, put it into
``JUPYTERHUB_SERVICE_URL``, print ``papa-hub-server HOST PORT`` on standard
output, which papa's kernel reads from the job's output file as it does for
every job, and exec the server.  The spawner waits for that line.
"""

from __future__ import annotations

import os
import re
import shlex

MARKER = "papa-hub-server"
# One line (papa requests are lines); the bound socket is closed just before
# the server binds the port again, as batchspawner-singleuser does.
LAUNCHER = (
    "import os,socket,sys,urllib.parse as u;"
    "url=u.urlsplit(os.environ['JUPYTERHUB_SERVICE_URL']);"
    "host=url.hostname or '';"
    "s=socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET);"
    "s.bind((host,0));port=s.getsockname()[1];s.close();"
    "name='['+host+']' if ':' in host else host;"
    "os.environ['JUPYTERHUB_SERVICE_URL']=u.urlunsplit("
    "url._replace(netloc=name+':'+str(port)));"
    f"print('{MARKER}',host if host not in ('','0.0.0.0','::') "
    "else socket.getfqdn(),port,flush=True);"
    "os.execvp(sys.argv[1],sys.argv[1:])"
)
_MARKER_LINE = re.compile(rb"^" + MARKER.encode() + rb" (\S+) ([0-9]+)\s*$", re.M)


def command(
    environment_path: str,
    server_command: list[str],
    arguments: list[str],
    singularity_command: list[str],
) -> list[str]:
    """The job's command line: the launcher, then the server.

    A ``.sif`` environment path is a Singularity image the server runs in;
    any other path is the folder holding ``jupyterhub-singleuser`` (moss
    asks for the full path: environments are not activated).
    """
    if environment_path.endswith(".sif"):
        return [
            *singularity_command,
            environment_path,
            "python3",
            "-c",
            LAUNCHER,
            *server_command,
            *arguments,
        ]
    program, *rest = server_command
    if environment_path and not os.path.isabs(program):
        program = os.path.join(environment_path, program)
    return ["python3", "-c", LAUNCHER, program, *rest, *arguments]


def find_address(output: bytes) -> tuple[str, int] | None:
    """The ``(host, port)`` the launcher printed, if it has."""
    match = _MARKER_LINE.search(output)
    if match is None:
        return None
    return match.group(1).decode(), int(match.group(2))


def shell_line(words: list[str]) -> str:
    """*words* as one shell line (for logs)."""
    return shlex.join(words)
