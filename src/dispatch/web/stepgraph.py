"""A run's step graph as SVG, drawn on the server so the run page needs no
script for it: one box per step, coloured by its status, an arrow per
recipe output (solid) or error link (dashed), and the start arrows from a
``start`` box.  Steps are placed in columns by their distance from the
start (the longest path, so an output always points right, except back
edges of a cycle, which recipes refuse anyway).

Every text is escaped here (labels come from recipes, which anyone who
starts a run writes); the result is :class:`markupsafe.Markup`, so the
template puts it in as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from html import escape
from typing import Any

from markupsafe import Markup

from dispatch.state import steps as step_kinds
from dispatch.state.recipe import LINK_KEYS, SPECIAL_KEYS

logger = logging.getLogger(__name__)

# Geometry, in SVG user units.
BOX_WIDTH, BOX_HEIGHT = 150, 44
COLUMN_GAP, ROW_GAP, MARGIN = 60, 20, 10
LABEL_CHARACTERS = 20
# Fill colour per step status (step.status in dispatch.state.model).
COLOURS = {
    "waiting": "#eeeeee",
    "pending": "#fff4c2",
    "in progress": "#cfe3ff",
    "done": "#cdeccd",
    "dead": "#f6c6c6",
    "cancelled": "#dddddd",
    "start": "#ffffff",
}
START = "start"


def links(value: Any) -> Iterator[int]:
    """The node ids in a recipe link (an int, a list, or a dict of those)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, str) and value.isdigit():
        yield int(value)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from links(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from links(item)


def edges(recipe: dict[str, Any]) -> list[tuple[int | str, int, str]]:
    """``(from, to, kind)``: kind ``output`` or ``error``; from ``start``
    for the start messages."""
    found: list[tuple[int | str, int, str]] = []
    for entry in recipe.get("start", []):
        if isinstance(entry, list | tuple) and entry:
            found.extend((START, target, "output") for target in links(entry[0]))
    for key, step in recipe.items():
        if key in SPECIAL_KEYS or not isinstance(step, dict) or not key.isdigit():
            continue
        for kind in LINK_KEYS:
            found.extend((int(key), target, kind) for target in links(step.get(kind)))
    return found


def columns(
    nodes: list[int], found: list[tuple[int | str, int, str]]
) -> dict[int | str, int]:
    """Column of each node (and of ``start``, 0): the longest path to it."""
    column: dict[int | str, int] = {START: 0}
    for node in nodes:
        column.setdefault(node, 1)
    # Longest paths by relaxation; at most len(nodes) rounds (no cycles).
    for _round in range(len(nodes) + 1):
        moved = False
        for source, target, _kind in found:
            if source in column and target in column:
                wanted = column[source] + 1
                if column[target] < wanted <= len(nodes) + 1:
                    column[target] = wanted
                    moved = True
        if not moved:
            break
    return column


def render(recipe: dict[str, Any], statuses: dict[int, str]) -> Markup:
    """The SVG of *recipe*'s steps, coloured by *statuses* ``{node: status}``."""
    nodes = sorted(statuses)
    found = [
        edge
        for edge in edges(recipe)
        if edge[1] in statuses and (edge[0] == START or edge[0] in statuses)
    ]
    column = columns(nodes, found)
    rows: dict[int, int] = {}
    place: dict[int | str, tuple[int, int]] = {}
    every: list[int | str] = [START, *nodes]
    for node in every:
        number = column[node]
        row = rows.get(number, 0)
        rows[number] = row + 1
        place[node] = (
            MARGIN + number * (BOX_WIDTH + COLUMN_GAP),
            MARGIN + row * (BOX_HEIGHT + ROW_GAP),
        )
    width = MARGIN * 2 + (max(column.values()) + 1) * (BOX_WIDTH + COLUMN_GAP)
    height = MARGIN * 2 + max(rows.values()) * (BOX_HEIGHT + ROW_GAP)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="step-graph" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="step graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
    ]
    for source, target, kind in found:
        x1, y1 = place[source]
        x2, y2 = place[target]
        dash = ' stroke-dasharray="5,4"' if kind == "error" else ""
        parts.append(
            f'<line class="edge edge-{kind}" x1="{x1 + BOX_WIDTH}" '
            f'y1="{y1 + BOX_HEIGHT // 2}" x2="{x2}" y2="{y2 + BOX_HEIGHT // 2}" '
            f'stroke="#555"{dash} marker-end="url(#arrow)"/>'
        )
    parts.append(_box(START, START, "", place[START], START))
    for node in nodes:
        definition = recipe.get(str(node), {})
        label = step_kinds.label(definition) if isinstance(definition, dict) else "-"
        parts.append(_box(node, f"{node}. {label}", statuses[node], place[node]))
    parts.append("</svg>")
    return Markup("".join(parts))


def _box(
    node: int | str,
    label: str,
    status: str,
    where: tuple[int, int],
    colour_of: str | None = None,
) -> str:
    x, y = where
    fill = COLOURS.get(colour_of or status, "#ffffff")
    shown = (
        label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "…"
    )
    link = f'<a href="#step-{node}">' if node != START else ""
    return (
        f'<g class="node state-{escape(status.replace(" ", "-"))}">{link}'
        f"<title>{escape(label)}{': ' + escape(status) if status else ''}</title>"
        f'<rect x="{x}" y="{y}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="6" '
        f'fill="{fill}" stroke="#333"/>'
        f'<text x="{x + 8}" y="{y + 18}" font-size="13">{escape(shown)}</text>'
        f'<text x="{x + 8}" y="{y + 35}" font-size="11" fill="#444">'
        f"{escape(status)}</text>{'</a>' if link else ''}</g>"
    )
