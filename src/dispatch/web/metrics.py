"""``/metrics`` in Prometheus text format: dispatch's queue depths, runs
per state and transitions between states (from the run index's counters:
no run is read), dead letters and service instances, and the zeo server's
``ruok`` figures (``zeo_up`` says whether it answered).  A registry is
made per scrape from one read of the state, so figures are never stale."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dispatch.state import views
from dispatch.web.console import console
from dispatch.web.zeofigures import zeo_figures

logger = logging.getLogger(__name__)

ROUTES = web.RouteTableDef()

# Gauges made from views.figures: (metric, help, label, figures key).
DISPATCH_GAUGES = (
    ("dispatch_queue_pending", "Messages waiting in a queue.", "queue", "pending"),
    ("dispatch_dead_letters", "Dead letters per queue.", "queue", "dead_letters"),
    ("dispatch_runs", "Runs per state.", "state", "runs"),
    (
        "dispatch_service_instances",
        "Running service instances.",
        "service",
        "instances",
    ),
)


class Snapshot(Collector):
    """Gauges of figures read once, for one scrape."""

    def __init__(
        self, dispatch: dict[str, Any] | None, zeo: dict[str, dict[str, Any]] | None
    ) -> None:
        self.dispatch = dispatch
        self.zeo = zeo

    def collect(self) -> Iterable[Metric]:
        if self.dispatch is not None:
            yield from dispatch_gauges(self.dispatch)
        up = GaugeMetricFamily(
            "zeo_up",
            "1 when the zeo server answered ruok (without one: the database is open).",
        )
        up.add_metric([], 0 if self.zeo is None else 1)
        yield up
        yield from zeo_gauges(self.zeo or {})


def dispatch_gauges(figures: dict[str, Any]) -> Iterator[Metric]:
    """The gauges of :func:`dispatch.state.views.figures`."""
    for name, description, label, key in DISPATCH_GAUGES:
        gauge = GaugeMetricFamily(name, description, labels=[label])
        for value, count in sorted(figures[key].items()):
            gauge.add_metric([value], count)
        yield gauge
    total = GaugeMetricFamily(
        "dispatch_dead_letters_total_held", "Dead letters in the index, all queues."
    )
    total.add_metric([], figures["dead_letters_total"])
    yield total
    transitions = CounterMetricFamily(
        "dispatch_run_transitions",
        "Runs that went from one state to another (from 'new': started).",
        labels=["from", "to"],
    )
    for (before, after), count in sorted(figures["transitions"].items()):
        transitions.add_metric([before, after], count)
    yield transitions


def zeo_gauges(storages: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """One gauge per numeric ``ruok`` figure, labelled by storage (texts
    such as the last transaction id are left out)."""
    figures: dict[str, GaugeMetricFamily] = {}
    for storage, status in sorted(storages.items()):
        for figure, value in sorted(status.items()):
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, int | float):
                continue
            name = "zeo_" + "".join(c if c.isalnum() else "_" for c in figure)
            gauge = figures.get(name)
            if gauge is None:
                gauge = figures[name] = GaugeMetricFamily(
                    name, f"ruok figure {figure!r}.", labels=["storage"]
                )
            gauge.add_metric([storage], value)
    yield from figures.values()


@ROUTES.get("/metrics")
async def metrics(request: web.Request) -> web.StreamResponse:
    here = console(request)
    # The state is on that server too: when it does not answer, reading the
    # state would only wait for it, and the scrape says zeo_up 0 at once.
    figures = None
    try:
        zeo: dict[str, dict[str, Any]] | None = await zeo_figures(here.zeo_address)
    except OSError as error:
        logger.warning("zeo did not answer ruok: %s", error)
        zeo = None
    else:
        figures = await here.read(views.figures)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot(figures, zeo))
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
