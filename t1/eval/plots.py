"""Figures as PNG (matplotlib, Agg canvas, no display), each beside the CSV of its data.

    plot_metrics(rows, keys, png)   training curves: one panel per key of metrics.jsonl rows,
                                    x = step; CSV columns: step, key1, key2, ...
    plot_scaling(results, png)      left: accuracy against thinking budget, one line per model
                                    with its 95 % band (paper Figure 1); right: sequential against
                                    majority vote over k samples of b/k tokens at equal total
                                    tokens. CSV columns: model, curve, k, budget,
                                    per_sample_budget, accuracy, lo, hi

Figures are built on `matplotlib.figure.Figure` directly (no pyplot global state), so plotting is
safe from any thread and never opens a window.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """A plain CSV (header row first); None is written as an empty cell."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow(["" if v is None else v for v in row])
    return path


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _number(value: Any) -> float | None:
    """A finite float from a metrics value, or None (strings like 'nan' and bools are skipped)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def numeric_keys(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Keys (except `step`) holding a finite number in at least one row, in first-seen order."""
    keys: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if k != "step" and _number(v) is not None:
                keys.setdefault(k, None)
    return list(keys)


def plot_metrics(
    rows: Sequence[dict[str, Any]], keys: Sequence[str], png: str | Path, title: str = ""
) -> Path | None:
    """One small panel per key against `step`; None when no row holds any of the keys."""
    from matplotlib.ticker import MaxNLocator

    keys = [k for k in keys if any(_number(r.get(k)) is not None for r in rows)]
    if not keys:
        return None
    png = Path(png)
    steps = [r.get("step", i) for i, r in enumerate(rows)]
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = _figure(4.2 * cols, 2.8 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False)
    for i, key in enumerate(keys):
        ax = axes[i // cols][i % cols]
        pts = [(s, _number(r.get(key))) for s, r in zip(steps, rows)]
        pts = [(s, v) for s, v in pts if v is not None]
        ax.plot(
            [s for s, _ in pts],
            [v for _, v in pts],
            color=COLORS[i % len(COLORS)],
            marker="." if len(pts) < 30 else None,
            linewidth=1.3,
        )
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for j in range(len(keys), nrows * cols):
        axes[j // cols][j % cols].set_visible(False)
    if title:
        fig.suptitle(title)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    write_csv(
        png.with_suffix(".csv"),
        ["step", *keys],
        [[s, *[_number(r.get(k)) for k in keys]] for s, r in zip(steps, rows)],
    )
    return png


def scaling_rows(results: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """The CSV rows behind `plot_scaling` (one per point)."""
    rows: list[list[Any]] = []
    for res in results:
        for p in res.get("sequential", []):
            where = ["sequential", 1, p["budget"], p["budget"]]
            rows.append([res["model"], *where, p["accuracy"], p["lo"], p["hi"]])
        for p in res.get("parallel", []):
            where = [f"maj@{p['k']}", p["k"], p["budget"], p["per_sample_budget"]]
            rows.append([res["model"], *where, p["accuracy"], p["lo"], p["hi"]])
    return rows


def _band(ax: Any, pts: Sequence[dict], label: str, color: str, style: str = "-") -> None:
    xs = [p["budget"] for p in pts]
    ax.plot(
        xs,
        [p["accuracy"] for p in pts],
        style,
        color=color,
        marker="o",
        markersize=4,
        label=label,
        linewidth=1.6,
    )
    ax.fill_between(xs, [p["lo"] for p in pts], [p["hi"] for p in pts], color=color, alpha=0.15)


def plot_scaling(results: Sequence[dict[str, Any]], png: str | Path) -> Path:
    """Accuracy against budget per model (left) and sequential against parallel (right)."""
    from matplotlib.ticker import NullLocator

    png = Path(png)
    has_par = any(res.get("parallel") for res in results)
    fig = _figure(11 if has_par else 6, 4.2)
    axes = fig.subplots(1, 2 if has_par else 1, squeeze=False)[0]
    left = axes[0]
    for i, res in enumerate(results):
        _band(left, res["sequential"], res["model"], COLORS[i % len(COLORS)])
    left.set_title("Inference scaling by truncation")
    left.set_ylabel("accuracy (95% CI)")
    if has_par:
        right = axes[1]
        styles = ["--", ":", "-."]
        for i, res in enumerate(results):
            color = COLORS[i % len(COLORS)]
            _band(right, res["sequential"], f"{res['model']}: 1 x b", color)
            for j, k in enumerate(sorted({p["k"] for p in res.get("parallel", [])})):
                pts = [p for p in res["parallel"] if p["k"] == k]
                _band(
                    right, pts, f"{res['model']}: maj@{k} x b/{k}", color, styles[j % len(styles)]
                )
        right.set_title("Sequential vs parallel at equal total tokens")
    budgets = sorted({p["budget"] for res in results for p in res["sequential"]})
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("thinking budget b (total tokens per problem)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    write_csv(
        png.with_suffix(".csv"),
        ["model", "curve", "k", "budget", "per_sample_budget", "accuracy", "lo", "hi"],
        scaling_rows(results),
    )
    return png
