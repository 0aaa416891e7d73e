"""The waiting parent of one child of a kernel with a state directory.

Run as ``python -I -S waiter.py`` by :mod:`papa.waited`, in a session of its
own, it reads the child's request (JSON) on stdin, starts the program with
``subprocess`` (its own process group, so the pid and process group papa
reports are the program's), answers ``{"pid": N}`` or the error on stdout,
then waits for the program and writes its exit code, atomically, to the
``exit_path`` file in the state directory.  A kernel killed meanwhile does
not take the exit code with it: the next kernel reads that file.

Only the standard library, no ``papa`` import: it starts in milliseconds
and runs whatever environment the program is given.
"""

import json
import os
import resource
import subprocess
import sys


# The same as papa.local's: this program imports nothing of papa's.
def _rlimit_setter(rlimits):
    limits = [
        (getattr(resource, f"RLIMIT_{name.upper()}"), value)
        for name, value in rlimits.items()
    ]

    def set_limits():
        for limit, value in limits:
            resource.setrlimit(limit, (value, value))

    return set_limits


def _sink(value, stdout_fd=None):
    if value is None:
        return subprocess.DEVNULL
    if value == "stdout":
        return subprocess.STDOUT if stdout_fd is not None else subprocess.DEVNULL
    return value


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    extra = {}
    if request.get("uid") is not None:
        extra["user"] = request["uid"]
        if request.get("extra_groups") is not None:
            extra["extra_groups"] = request["extra_groups"]
    if request.get("gid") is not None:
        extra["group"] = request["gid"]
    if request.get("rlimits"):
        extra["preexec_fn"] = _rlimit_setter(request["rlimits"])
    stdout_fd = request.get("stdout")
    reply = sys.stdout
    try:
        child = subprocess.Popen(
            request["argv"],
            stdin=subprocess.DEVNULL,
            stdout=_sink(stdout_fd),
            stderr=_sink(request.get("stderr"), stdout_fd),
            close_fds=True,
            pass_fds=request.get("pass_fds", []),
            process_group=0,
            shell=request.get("shell", False),
            cwd=request.get("cwd"),
            env=request.get("env", {}),
            **extra,
        )
    except BaseException as exc:
        error = {"error": type(exc).__name__, "message": str(exc)}
        reply.write(json.dumps(error) + "\n")
        reply.flush()
        return 1
    # Only the program holds its output and the kernel's sockets now: a pipe
    # reaches EOF when the program ends, not when this parent does.
    for fd in {*request.get("pass_fds", []), stdout_fd, request.get("stderr")}:
        if isinstance(fd, int):
            os.close(fd)
    reply.write(json.dumps({"pid": child.pid}) + "\n")
    reply.close()
    exit_code = child.wait()
    temporary = request["exit_path"] + ".tmp"
    with open(temporary, "w") as exit_file:
        exit_file.write(f"{exit_code}\n")
    os.replace(temporary, request["exit_path"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
