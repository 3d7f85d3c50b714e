"""The run-history chart, drawn on the server as inline SVG (no script, no chart library).

One bar per run, oldest on the left: its height is the run's duration, its colour the outcome
(``ok``, ``partial``, ``failed``), and a dot above it how many records the run changed. Each bar
carries a ``<title>`` (the browser's tooltip) with the time, outcome, duration and counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

from mlconnector.store import Run

WIDTH = 760
HEIGHT = 180
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 48, 12, 28
#: counters that mean "a record was changed" (the dots)
CHANGED = ("created", "updated", "cancelled", "written_back", "adjusted")


def changed(run: Run) -> int:
    """How many records the run changed."""
    return sum(run.counts.get(name, 0) for name in CHANGED)


def _fmt(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def runs_chart(runs: Sequence[Run], *, width: int = WIDTH, height: int = HEIGHT) -> Markup:
    """An ``<svg>`` of ``runs`` (any order; drawn oldest first). Empty input, empty markup."""
    if not runs:
        return Markup("")
    ordered = sorted(runs, key=lambda r: (r.started_at, r.id))
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    top_seconds = max(max(r.seconds for r in ordered), 0.001)
    top_changed = max(max(changed(r) for r in ordered), 1)
    slot = plot_w / len(ordered)
    bar = max(1.0, slot * 0.7)
    parts = [
        f'<svg class="runs-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{len(ordered)} runs: duration and outcome">',
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" '
        f'y2="{_TOP + plot_h}"/>',
        f'<text class="axis-label" x="{_LEFT - 4}" y="{_TOP + 10}" text-anchor="end">'
        f"{escape(_fmt(top_seconds))}</text>",
        f'<text class="axis-label" x="{_LEFT - 4}" y="{_TOP + plot_h}" text-anchor="end">0</text>',
        f'<text class="axis-label changed" x="{_LEFT + plot_w + 4}" y="{_TOP + 10}">'
        f"{top_changed} chg</text>",
    ]
    for n, run in enumerate(ordered):
        h = max(1.0, plot_h * run.seconds / top_seconds)
        x = _LEFT + n * slot + (slot - bar) / 2
        y = _TOP + plot_h - h
        counts = " ".join(f"{k}={v}" for k, v in sorted(run.counts.items()) if v) or "no changes"
        title = (
            f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC · {run.outcome} · {_fmt(run.seconds)} · "
            f"{counts}" + (f" · {run.error}" if run.error else "")
        )
        parts.append(
            f'<rect class="run run-{escape(run.outcome)}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(title[:300])}</title></rect>'
        )
        cy = _TOP + plot_h - plot_h * changed(run) / top_changed
        parts.append(f'<circle class="changed" cx="{x + bar / 2:.1f}" cy="{cy:.1f}" r="2.5"/>')
    first, last = ordered[0].started_at, ordered[-1].started_at
    parts += [
        f'<text class="axis-label" x="{_LEFT}" y="{height - 8}">{first:%Y-%m-%d %H:%M}</text>',
        f'<text class="axis-label" x="{_LEFT + plot_w}" y="{height - 8}" text-anchor="end">'
        f"{last:%Y-%m-%d %H:%M}</text>",
        "</svg>",
    ]
    return Markup("".join(parts))  # noqa: S704 (every value above is a number or escaped)
