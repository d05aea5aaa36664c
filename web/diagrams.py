"""Workflow diagrams (流程图) as SVG, drawn by graphviz's ``dot`` from the definition itself.

A definition never changes once registered, so a picture is a pure function of
(key, version, current state, path taken) and is cached on exactly that. In an instance's
picture the current state is filled and the path it took is drawn bold and green.
"""

from __future__ import annotations

from functools import lru_cache

import graphviz

from engine.definitions import SYSTEM, Workflow
from engine.machine import Registry

FONT = "WenQuanYi Zen Hei"
CURRENT, VISITED, TAKEN = "#f4b400", "#d9ead3", "#2e7d32"


def _edges(wf: Workflow) -> tuple[tuple[str, str, str, str], ...]:
    """(source, dest, trigger, label) for every arrow of ``wf``."""
    edges = []
    for t in wf.transitions:
        label = t.label or wf.label_of(t.trigger)
        if t.guard is not None:
            label += f"\n[{t.guard.label}]"
        elif t.otherwise:
            label += "\n[否则]"
        if t.by == SYSTEM:
            label += "\n(系统)"
        edges.extend((src, t.dest, t.trigger, label) for src in t.sources)
    return tuple(edges)


@lru_cache(maxsize=512)
def render(
    registry: Registry,
    key: str,
    version: int,
    current: str | None = None,
    taken: frozenset[tuple[str, str, str]] = frozenset(),
) -> str:
    """SVG of (key, version); ``current`` filled, states and (source, trigger, dest) arrows in ``taken`` marked."""
    wf = registry.get(key, version).workflow
    visited = {s for src, _t, dest in taken for s in (src, dest)}
    g = graphviz.Digraph(wf.key, format="svg")
    g.attr(rankdir="TB", fontname=FONT, label=f"{wf.title} v{wf.version}", labelloc="t")
    g.attr("node", fontname=FONT, shape="box", style="rounded,filled", fillcolor="white")
    g.attr("edge", fontname=FONT, fontsize="10", color="#777777")
    for st in wf.states:
        attrs = {"fillcolor": CURRENT if st.name == current else VISITED if st.name in visited else "white"}
        if st.final:
            attrs["peripheries"] = "2"
        if st.name == current:
            attrs["penwidth"] = "2.5"
        g.node(st.name, st.label, **attrs)
    for src, dest, trigger, label in _edges(wf):
        attrs = (
            {"color": TAKEN, "penwidth": "2.5", "fontcolor": TAKEN} if (src, trigger, dest) in taken else {}
        )
        g.edge(src, dest, label=label, **attrs)
    svg = g.pipe(encoding="utf-8")
    return svg[svg.index("<svg") :]
