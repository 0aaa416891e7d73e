#!/usr/bin/env bash
# `make demo`: the whole pipeline on this machine.
#
# Starts runzeo and the papa kernel under zdaemon (conf/zdaemon-*.conf),
# starts `dispatch supervise -C conf/dispatch.conf` (Greeter, Counter and a
# CommandRunner, kept running through papa) and the web console (`dispatch
# web`, 127.0.0.1:8080), submits examples/recipes/demo.json with
# `go --wait` (plus demo-slurm.json when a Slurm cluster answers), shows
# the run and its page in the console, and stops everything it started,
# also when a step fails or the demo is interrupted.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DISPATCH_ZEO=127.0.0.1:8100 DISPATCH_PAPA=20202
mkdir -p var
say() { printf 'demo: %s\n' "$*"; }

supervise_pid=
web_pid=
stop_all() {
    status=$?
    trap - EXIT INT TERM
    if [ -n "$web_pid" ]; then
        say "stopping the web console"
        kill -TERM "$web_pid" 2>/dev/null
        wait "$web_pid" 2>/dev/null
    fi
    if [ -n "$supervise_pid" ]; then
        say "stopping dispatch supervise (each service finishes its message)"
        kill -TERM "$supervise_pid" 2>/dev/null
        wait "$supervise_pid" 2>/dev/null
    fi
    say "stopping the papa kernel and runzeo"
    $BIN/zdaemon -C conf/zdaemon-papa.conf stop >/dev/null 2>&1
    $BIN/zdaemon -C conf/zdaemon-zeo.conf stop >/dev/null 2>&1
    exit "$status"
}
# started PID PATTERN LOG: wait until LOG has a line matching PATTERN;
# false if the process PID exits first.
started() {
    until grep -q "$2" "$3"; do
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
}
trap stop_all EXIT
trap 'exit 130' INT TERM

say "starting runzeo (conf/zeo.conf, 127.0.0.1:8100) under zdaemon"
$BIN/zdaemon -C conf/zdaemon-zeo.conf start || exit 1
say "starting the papa kernel (conf/papa.conf, 127.0.0.1:20202) under zdaemon"
$BIN/zdaemon -C conf/zdaemon-papa.conf start || exit 1
# zdaemon returns once the programs run; wait until both listen (a client
# would otherwise start a kernel of its own).
$BIN/python - <<'PY' || exit 1
import socket, sys, time
deadline = time.monotonic() + 60
for port in (8100, 20202):
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if time.monotonic() > deadline:
            sys.exit(f"demo: nothing listens on 127.0.0.1:{port}; see var/*.log")
        time.sleep(0.05)
PY

say "starting dispatch supervise -C conf/dispatch.conf (log: var/supervise.log)"
$BIN/dispatch supervise -C conf/dispatch.conf >var/supervise.log 2>&1 &
supervise_pid=$!
if ! started "$supervise_pid" '^supervising' var/supervise.log; then
    supervise_pid=
    say "dispatch supervise could not start:"; cat var/supervise.log
    exit 1
fi

say "starting the web console: dispatch web -C conf/dispatch.conf (log: var/web.log)"
$BIN/dispatch web -C conf/dispatch.conf >var/web.log 2>&1 &
web_pid=$!
if ! started "$web_pid" '^web: serving' var/web.log; then
    web_pid=
    say "the web console could not start (the demo goes on without it):"
    cat var/web.log
fi
[ -n "$web_pid" ] && say "$(grep '^web: serving' var/web.log | sed 's/^web: //')"

recipes=(examples/recipes/demo.json)
if command -v sinfo >/dev/null 2>&1 && sinfo -h >/dev/null 2>&1; then
    say "a Slurm cluster answers: the run also has a Slurm job"
    recipes+=(examples/recipes/demo-slurm.json)
else
    say "no Slurm cluster answers: the run has no Slurm step"
fi

say "dispatch go ${recipes[*]} -p name=zeopapa -p limit=3 --wait"
$BIN/dispatch go "${recipes[@]}" -p name=zeopapa -p limit=3 \
    --wait --timeout 300 | tee var/demo-go.out
go_status=${PIPESTATUS[0]}
run_id=$(head -n 1 var/demo-go.out)
if [ -n "$run_id" ]; then
    say "dispatch show $run_id"
    $BIN/dispatch show "$run_id"
    if [ -n "$web_pid" ]; then
        say "the run's page: http://127.0.0.1:8080/runs/$run_id (JSON: /api/runs/$run_id)"
        $BIN/python - "$run_id" <<'PY'
import json, sys, urllib.request
url = f"http://127.0.0.1:8080/api/runs/{sys.argv[1]}"
with urllib.request.urlopen(url, timeout=30) as reply:
    run = json.load(reply)
print(f"demo: the console says the run is {run['run']['status']}")
PY
    fi
fi
if [ "$go_status" -ne 0 ]; then
    say "the run did not succeed (status $go_status); var/supervise.log:"
    tail -n 30 var/supervise.log
    exit 1
fi
say "done: every step succeeded"
