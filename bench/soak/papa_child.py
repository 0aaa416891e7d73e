"""One child of the papa kill soak (``papa_crash.py``): numbered lines, then a code.

``python -I -S papa_child.py TAG DELAY SECONDS CODE REPORT STOP`` writes
``TAG N`` on stdout every DELAY seconds (and ``TAG eM`` on stderr every
fifth line) until SECONDS have passed (0: until the STOP file exists), then
writes ``LINES ERRORS CODE`` to the REPORT file and exits with CODE.  A
write to a dead pipe (an output pipe of a killed kernel) is not fatal: the
child goes on and still exits with CODE, the code the soak expects.  Only
the standard library: it starts fast under ``-I -S``.
"""

import os
import sys
import time


def write(stream, text):
    try:
        stream.write(text)
        stream.flush()
    except OSError:  # EPIPE: the kernel that held the pipe was killed
        pass


def main():
    tag, delay, seconds, code, report, stop = sys.argv[1:7]
    delay, seconds, code = float(delay), float(seconds), int(code)
    ended = time.monotonic() + seconds
    lines = errors = 0
    while True:
        if seconds and time.monotonic() >= ended:
            break
        if not seconds and os.path.exists(stop):
            break
        write(sys.stdout, f"{tag} {lines}\n")
        lines += 1
        if lines % 5 == 0:
            write(sys.stderr, f"{tag} e{errors}\n")
            errors += 1
        time.sleep(delay)
    temporary = report + ".tmp"
    with open(temporary, "w") as report_file:
        report_file.write(f"{lines} {errors} {code}\n")
    os.replace(temporary, report)
    # No interpreter shutdown: flushing a dead pipe there would change the code.
    os._exit(code)


if __name__ == "__main__":
    main()
