"""A job program recorded in zeo, for the kill-and-resume tests.

``python runner.py HOST:PORT RUN_NAME WORK_DIR MODE``: MODE ``hang`` makes
the Blocker job print ``HANG`` and wait on stdin forever (the test kills the
process there); ``finish`` lets it succeed.  Every Check and Run appends
``name.step pid`` to WORK_DIR/executions.log; the final statuses are printed
as one JSON line.
"""

import json
import os
import sys
from pathlib import Path

import zeo
from dispatch.jobs import DoJobber, DummyJob, Job
from zeo.address import parse_address

ADDRESS, RUN_NAME, WORK, MODE = sys.argv[1:5]
WORK = Path(WORK)


def note(text):
    with open(WORK / "executions.log", "a") as log:
        log.write(f"{text} {os.getpid()}\n")


class MarkerJob(Job):
    """Done when WORK/<name>.done exists; Run creates it."""

    def Check(self):
        name = type(self).__name__
        note(f"{name}.check")
        if not (WORK / f"{name}.done").exists():
            raise RuntimeError(f"{name} not done")
        return name

    def Run(self):
        name = type(self).__name__
        note(f"{name}.run")
        (WORK / f"{name}.done").write_text("done")


class First(MarkerJob):
    def Run(self):
        super().Run()
        self.global_storage["token"] = f"made by {os.getpid()}"


class Second(MarkerJob):
    DEPS = [First]


class Blocker(MarkerJob):
    DEPS = [Second]

    def Run(self):
        if MODE == "hang":
            note("Blocker.hang")
            sys.stdout.write("HANG\n")
            sys.stdout.flush()
            sys.stdin.read()  # the test kills us here
        super().Run()


class Final(Job):
    DEPS = [Blocker, Second]

    def Check(self):
        note("Final.check")
        return self.global_storage["token"]

    def Run(self):
        note("Final.run")


class Everything(DummyJob):
    DEPS = [Final]


def main():
    database = zeo.DB(parse_address(ADDRESS))
    dojob = DoJobber(db=database, run_name=RUN_NAME)
    dojob.configure(Everything, verbose=True, default_retry_delay=0)
    dojob.checknrun()
    print(json.dumps({"status": dojob.nodestatus, "results": dojob.noderesults}))
    dojob.close()
    database.close()


if __name__ == "__main__":
    main()
