# The two set-up commands the README gives: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PEERS := .peers
# Real ZEO is a reference peer for interop tests and benchmarks; it lives in a
# folder of its own so that its scripts never shadow ours.
ZEO_PEER := $(PEERS)/zeo
# zodbshootout and pyperf for `make bench-shootout`, without their dependencies
# so that no second ZODB shadows the venv's (six and objgraph are all they
# need besides what the venv has).
SHOOTOUT_PEER := $(PEERS)/zodbshootout
# Real papa 1.0.6, likewise: its package is also named `papa`, so it is only
# ever imported by subprocesses run with PYTHONPATH pointing here.
PAPA_PEER := $(PEERS)/papa
# DoJobber 0.6.3 is the reference peer of dispatch.jobs (interop tests, bench).
DOJOBBER_PEER := $(PEERS)/dojobber
# JupyterHub's proxy, from the npm registry, for the papa.hub tests (the hub
# itself and jupyter-server are in the venv: the spawner runs inside the hub).
CHP_PEER := $(PEERS)/chp
# python-workflows 3.3 and zocalo 1.5.0, the peers of dispatch.workflows: their
# services run in subprocesses with PYTHONPATH pointing here, on our transport.
WORKFLOWS_PEER := $(PEERS)/workflows

# (relstorage: the RelStorage tests start a PostgreSQL of their own, see
# `make postgresql`.)
.PHONY: postgresql rabbitmq demo test fuzz fuzz-atheris soak lint venv peers shootout-peer bench bench-shootout bench-zocalo bench-relstorage clean slurm-up slurm-down browser-up screenshots

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,fuzz,uvloop,web,browser,relstorage]'
	touch $@

venv: $(VENV)/.installed

$(ZEO_PEER)/.installed: $(VENV)/.installed
	$(PY) -m pip install -q --target $(ZEO_PEER) 'ZEO==6.2' msgpack
	touch $@

$(DOJOBBER_PEER)/.installed: $(VENV)/.installed
	$(PY) -m pip install -q --target $(DOJOBBER_PEER) 'dojobber==0.6.3'
	touch $@

$(PAPA_PEER)/.installed: $(VENV)/.installed
	$(PY) -m pip install -q --target $(PAPA_PEER) 'papa==1.0.6'
	touch $@

$(CHP_PEER)/.installed:
	npm install --silent --no-audit --no-fund --prefix $(CHP_PEER) 'configurable-http-proxy@5.3.0'
	touch $@

$(WORKFLOWS_PEER)/.installed: $(VENV)/.installed
	$(PY) -m pip install -q --target $(WORKFLOWS_PEER) 'workflows==3.3' 'zocalo==1.5.0'
	touch $@

peers: $(ZEO_PEER)/.installed $(PAPA_PEER)/.installed $(DOJOBBER_PEER)/.installed $(CHP_PEER)/.installed $(WORKFLOWS_PEER)/.installed

$(SHOOTOUT_PEER)/.installed: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps --target $(SHOOTOUT_PEER) \
		'zodbshootout==0.8.0' 'pyperf==1.7.1' 'six==1.17.0' 'objgraph==3.7.0'
	touch $@

shootout-peer: $(SHOOTOUT_PEER)/.installed

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

test: venv peers lint
	ZEOPAPA_REQUIRE_PEERS=1 ZEOPAPA_REQUIRE_ATHERIS=1 $(VENV)/bin/pytest

# The fuzz targets of tests/fuzz with 10**6 inputs each instead of make test's
# few hundred (hours; findings are kept in .hypothesis/ and replayed first).
FUZZ_EXAMPLES ?= 1000000
fuzz: venv
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(VENV)/bin/pytest tests/fuzz --timeout=0 -x

# The atheris (coverage-guided, libFuzzer) targets of
# tests/fuzz/atheris_targets.py, FUZZ_RUNS inputs each, seeded from
# tests/fuzz/corpus; new inputs are kept in var/fuzz/TARGET and a failing
# one as var/fuzz/crash-* (make test runs all of them for a few thousand).
FUZZ_RUNS ?= 1000000
ATHERIS_TARGETS := $(notdir $(wildcard tests/fuzz/corpus/*))
fuzz-atheris: venv
	for target in $(ATHERIS_TARGETS); do \
		mkdir -p var/fuzz/$$target && \
		PYTHONPATH=src:. $(PY) -m tests.fuzz.atheris_targets $$target \
			-runs=$(FUZZ_RUNS) -artifact_prefix=var/fuzz/ var/fuzz/$$target \
			|| exit 1; \
	done

# The soaks of bench/soak at full length (make test runs a short version of
# each): runzeo killed with SIGKILL 100 times under committing clients, and
# 1,000 clients that come and go in odd states, and ZODB's race checks
# riding through 100 server restarts; the papa kernel killed with SIGKILL
# 50 times under 50 children and 5 Slurm jobs (skipped without sinfo); and
# dispatch's consumers, runners and supervisor killed with SIGKILL 100 times
# during 10,000 transitions.
soak: venv
	$(PY) bench/soak/zeo_crash.py --kills 100 --workers 4
	$(PY) bench/soak/zeo_crash.py --kills 100 --workers 4 --blobs
	$(PY) bench/soak/zeo_resources.py --connections 1000
	$(PY) bench/soak/zeo_ridethrough.py --restarts 100
	$(PY) bench/soak/papa_crash.py --kills 50 --children 50 --slurm-jobs 5
	$(PY) bench/soak/dispatch_crash.py --transitions 10000 --kills 100

# The dispatch pipeline: runzeo and papa under zdaemon, dispatch supervise,
# a recipe run with go --wait, then everything stopped (examples/demo.sh).
# The zeo-only demo is still `$(PY) -m zeo.demo`.
demo: venv
	bash examples/demo.sh

bench: venv peers
	$(PY) bench/zeo_bench.py

bench-shootout: venv peers shootout-peer
	$(PY) bench/zodbshootout_bench.py

# Debian's rabbitmq-server for bench/zocalo_bench.py (needs root and apt when
# it is missing); the benchmark starts a broker of its own on free ports.
rabbitmq:
	bench/install-rabbitmq.sh

# dispatch against zocalo services on a real RabbitMQ (bench/zocalo_bench.py).
bench-zocalo: venv peers rabbitmq
	$(PY) bench/zocalo_bench.py

# RelStorage on a throwaway PostgreSQL (issue 15): commits, invalidation lag,
# and dispatch transitions/s on each setup (docs/scaling.rst).
bench-relstorage: venv postgresql
	$(PY) bench/relstorage_bench.py
	$(PY) bench/relstorage_dispatch_bench.py

# A one-node Slurm cluster on loopback for the `slurm` tests (needs root;
# installs Debian's slurm packages when missing). SLURM_PURGE=1 also deletes
# its state and logs on the way down.
slurm-up:
	tests/slurm/start-cluster.sh

# Debian's chromium for the browser tests (tests/browser; needs root and apt
# when it is missing).
browser-up:
	tests/browser/install-chromium.sh

# The console's screenshots in docs/web/*.png, taken by the browser tests.
screenshots: venv
	$(VENV)/bin/pytest tests/browser --screenshots -q

# Debian's PostgreSQL server programs for the RelStorage tests (needs root;
# installs the package when missing).  The tests start a throwaway cluster of
# their own (tests/support/postgresql.py): no server is started here.
postgresql:
	tests/support/install-postgresql.sh

slurm-down:
	tests/slurm/stop-cluster.sh $(if $(filter 1,$(SLURM_PURGE)),--purge)

clean:
	rm -rf $(VENV) $(PEERS) var build *.egg-info
