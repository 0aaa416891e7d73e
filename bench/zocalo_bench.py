"""dispatch against its real peer: zocalo services on RabbitMQ.

One run, three columns doing the same work, a 3-step recipe started
``--messages`` times (each start one run, as ``zocalo.go`` makes one):

- ``zocalo``: real ``zocalo.service`` (zocalo 1.5.0, python-workflows 3.3,
  from ``.peers/workflows``) running the service in bench/zocalo_site on a
  real RabbitMQ (Debian's ``rabbitmq-server``, started here in a temporary
  directory on free ports) with workflows' pika transport: each step acks
  and sends in one AMQP transaction, durable queues, persistent messages;
- ``zeo-transport``: the same service, unchanged, under the same
  ``zocalo.service`` on dispatch's ``zeo`` transport over our runzeo: each
  step one zeo commit (claim, then ack and send together);
- ``dispatch``: dispatch's own consumers (``dispatch.runtime.consumer``) on
  the same runzeo, prefetch 1, through bench/dispatch_bench.py's
  ``transitions``.

For 1 and 4 service processes, each round preloads the messages, lets the
services connect and wait at a barrier, then times from the barrier to the
last message leaving step 3: transitions/s = 3 x messages / seconds.  Also
go-to-first-step latency with idle services: from just before the start is
sent (or committed) to the first step's handler.  Medians of ``--rounds``;
ratios against zocalo printed at the end.  Progress goes to stderr, one
JSON line per figure to stdout.

Needs ``make peers`` and ``bench/install-rabbitmq.sh`` (``make
bench-zocalo`` runs both).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _servers import free_port, start_our_runzeo, wait_until  # noqa: E402
from dispatch_bench import go_to_first_step, transitions  # noqa: E402

PEER = ROOT / ".peers" / "workflows"
SITE = Path(__file__).resolve().parent / "zocalo_site"
DRIVER = SITE / "driver.py"
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
STEPS = 3
# zocalo.service names the transports by class, workflows.transport.lookup by
# either; ours is registered as "zeo".
SERVICE_TRANSPORTS = {"pika": "PikaTransport", "zeo": "zeo"}
DEADLINE = 120.0

DECLARE = """
import sys, pika
connection = pika.BlockingConnection(
    pika.ConnectionParameters("127.0.0.1", int(sys.argv[1])))
channel = connection.channel()
for queue in ("bench.step", "bench.done"):
    channel.queue_declare(queue, durable=True)
for exchange in ("transient.status", "command"):
    channel.exchange_declare(exchange, "fanout", durable=True)
connection.close()
"""


class RabbitMQ:
    """A broker of our own in *directory*, on a free port, until stop()."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        home = directory / "home"
        home.mkdir()
        (directory / "enabled_plugins").write_text("[].\n")
        config = directory / "rabbitmq.conf"
        config.write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        environment = dict(
            os.environ,
            HOME=str(home),
            RABBITMQ_NODENAME=f"bench{self.port}@localhost",
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_MNESIA_BASE=str(directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(directory / "log"),
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(directory / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(directory / "pid"),
        )
        environment.pop("RABBITMQ_ALLOW_INPUT", None)
        self.log = open(directory / "rabbitmq.log", "w")
        self.process = subprocess.Popen(
            [str(RABBITMQ_SERVER)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self.declared, DEADLINE, "RabbitMQ accepting connections")

    def declared(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"rabbitmq-server exited with {self.process.returncode}")
        return run_peer(["-c", DECLARE, str(self.port)], check=False).returncode == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def peer_environment(transport: str, zeo_address: str) -> dict:
    paths = [SITE, PEER] + ([ROOT / "src"] if transport == "zeo" else [])
    environment = dict(os.environ, PYTHONPATH=":".join(map(str, paths)))
    environment["DISPATCH_ZEO"] = zeo_address
    return environment


def run_peer(arguments, transport="pika", zeo_address="", check=True, **options):
    return subprocess.run(
        [sys.executable, *arguments],
        env=peer_environment(transport, zeo_address),
        capture_output=True,
        text=True,
        check=check,
        timeout=DEADLINE * 10,
        **options,
    )


class Column:
    """How to reach one transport: the driver's and the services' arguments."""

    def __init__(self, transport: str, port: int, zeo_address: str) -> None:
        self.transport = transport
        self.port = port
        self.zeo_address = zeo_address

    def driver(self, verb: str, count: int, **options):
        return subprocess.Popen(
            [sys.executable, str(DRIVER), self.transport, str(self.port), verb]
            + [str(count)],
            env=peer_environment(self.transport, self.zeo_address),
            stdout=subprocess.PIPE,
            text=True,
            **options,
        )

    def service_command(self) -> list:
        command = [sys.executable, str(PEER / "bin" / "zocalo.service")]
        command += ["-s", "BenchStep", "-t", SERVICE_TRANSPORTS[self.transport]]
        if self.transport == "pika":
            return command + [
                "--rabbit-host",
                "127.0.0.1",
                "--rabbit-port",
                str(self.port),
            ]
        return command + ["--zeo", self.zeo_address]

    def services(self, count: int, ready: Path, log: Path) -> list:
        environment = peer_environment(self.transport, self.zeo_address)
        environment["BENCH_READY_DIR"] = str(ready)
        with open(log, "a") as output:
            started = [
                subprocess.Popen(
                    self.service_command(),
                    env=environment,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                for _ in range(count)
            ]

        def all_ready():
            for process in started:
                if process.poll() is not None:
                    tail = log.read_text()[-3000:]
                    raise RuntimeError(f"a BenchStep service exited:\n{tail}")
            return len(list(ready.glob("ready-*"))) >= count

        wait_until(all_ready, DEADLINE, f"{count} BenchStep services waiting")
        return started


def stop(processes) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def workflows_round(column: Column, consumers: int, messages: int, work: Path) -> float:
    """Transitions/s of *consumers* BenchStep services on *column*."""
    ready = Path(tempfile.mkdtemp(dir=work))
    sender = column.driver("send", messages)
    assert sender.communicate()[0].strip() == "sent", "the driver could not send"
    collector = column.driver("collect", messages)
    services = []
    try:
        assert collector.stdout.readline().strip() == "listening"
        services = column.services(consumers, ready, work / "services.log")
        began = time.time()
        (ready / "go").touch()
        last = json.loads(collector.stdout.readline())["last"]
        collector.wait()
    finally:
        stop(services)
        if collector.poll() is None:
            collector.kill()
            collector.wait()
        shutil.rmtree(ready)
    return round(STEPS * messages / (last - began), 1)


def workflows_latency(column: Column, repeat: int, work: Path) -> list:
    ready = Path(tempfile.mkdtemp(dir=work))
    services = column.services(1, ready, work / "services.log")
    try:
        (ready / "go").touch()
        driver = column.driver("latency", repeat)
        delays = json.loads(driver.communicate()[0])["delays"]
    finally:
        stop(services)
        shutil.rmtree(ready)
    return delays


def figure(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="recipe starts")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure")
    parser.add_argument("--repeat", type=int, default=30, help="latency samples")
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 4])
    options = parser.parse_args()
    if not (PEER / ".installed").exists():
        raise SystemExit(f"{PEER} missing: run `make peers`")
    if not RABBITMQ_SERVER.exists():
        raise SystemExit("rabbitmq-server missing: run bench/install-rabbitmq.sh")
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        (work / "rabbitmq").mkdir()
        (work / "zeo").mkdir()
        broker = RabbitMQ(work / "rabbitmq")
        server, zeo_text = start_our_runzeo(work / "zeo")
        host, port = zeo_text.rsplit(":", 1)
        zeo_address = (host, int(port))
        print(f"RabbitMQ on {broker.port}, runzeo at {zeo_text}", file=sys.stderr)
        columns = {
            "zocalo": Column("pika", broker.port, zeo_text),
            "zeo-transport": Column("zeo", broker.port, zeo_text),
        }
        rates = {
            (name, n): [] for name in [*columns, "dispatch"] for n in options.consumers
        }
        try:
            for name, column in columns.items():
                delays = workflows_latency(column, options.repeat, work)
                figure(
                    figure="go_to_first_step",
                    column=name,
                    median_ms=round(statistics.median(delays) * 1000, 2),
                    max_ms=round(max(delays) * 1000, 2),
                    repeat=options.repeat,
                )
            go_to_first_step(zeo_address, options.repeat)  # the dispatch column
            for _round in range(options.rounds):
                for consumers in options.consumers:
                    for name, column in columns.items():
                        rate = workflows_round(
                            column, consumers, options.messages, work
                        )
                        rates[name, consumers].append(rate)
                        print(f"{name}, {consumers}: {rate}/s", file=sys.stderr)
                    rate = transitions(
                        server, zeo_address, consumers, STEPS, options.messages, 1
                    )[0]
                    rates["dispatch", consumers].append(rate)
                    print(f"dispatch, {consumers}: {rate}/s", file=sys.stderr)
        finally:
            server.terminate()
            server.wait()
            broker.stop()
    medians = {key: statistics.median(samples) for key, samples in rates.items()}
    for (name, consumers), median in medians.items():
        figure(
            figure="transitions",
            column=name,
            consumers=consumers,
            per_second=median,
            samples=rates[name, consumers],
            transitions=STEPS * options.messages,
            unit="transitions/s",
        )
    print(
        f"\n{'consumers':>9}  {'zocalo':>10}  {'zeo-transport':>14}  {'dispatch':>10}  ratios",
        file=sys.stderr,
    )
    for consumers in options.consumers:
        zocalo = medians["zocalo", consumers]
        transport = medians["zeo-transport", consumers]
        ours = medians["dispatch", consumers]
        figure(
            figure="ratio",
            consumers=consumers,
            dispatch_to_zocalo=round(ours / zocalo, 2),
            zeo_transport_to_zocalo=round(transport / zocalo, 2),
        )
        print(
            f"{consumers:>9}  {zocalo:>10}  {transport:>14}  {ours:>10}  "
            f"dispatch {ours / zocalo:.2f}x, zeo-transport {transport / zocalo:.2f}x",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
