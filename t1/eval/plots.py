"""Figures as PNG (matplotlib, Agg canvas, no display), each beside the CSV of its data.

    plot_metrics(rows, panels, png) training curves: one panel per key of metrics.jsonl rows
                                    (or per list of keys holding one series), x = step: the raw
                                    values faint, their smoothing (`ema_smooth`) drawn over them;
                                    CSV columns: step, key1, key2, ... (raw values)
    split_series(rows, keys)        which keys are constant, hold one value, or repeat another
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
import fnmatch
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


# weight w of the exponential moving average drawn over each training curve: it averages over
# about (1 + w) / (1 - w) = 9 logged steps
SMOOTHING = 0.8
# series with fewer points are drawn raw only (a smoothed line of a handful of points hides them)
MIN_SMOOTHED_POINTS = 10
# keys set by a schedule rather than measured: exact as they are, a lagging average would mislead
RAW_ONLY = ("lr", "lr/*", "epoch")
# how to read the figures `plot_metrics` draws (the report prints it above them)
CURVES_NOTE = (
    "Faint: the value at each logged step; solid: its exponential moving average (weight "
    f"{SMOOTHING}, debiased at the start as TensorBoard smooths; series under "
    f"{MIN_SMOOTHED_POINTS} points and the schedule's {', '.join(RAW_ONLY)} are drawn raw "
    "only). Keys equal at every step share one panel titled with all their names; constant "
    "keys are listed instead of drawn."
)


def ema_smooth(values: Sequence[float], weight: float = SMOOTHING) -> list[float]:
    """TensorBoard's smoothing, debiased at the start:

        m_0 = 0,  m_n = w * m_{n-1} + (1 - w) * x_n,  s_n = m_n / (1 - w^n)

    so s_n = sum_{i<=n} w^(n-i) x_i / sum_{i<=n} w^(n-i), a weighted mean of the points so far
    (s_1 = x_1; without the division the line would start near 0). Points are taken in order,
    whatever their step spacing. 0 <= w < 1; w = 0 returns the values."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out, m = [], 0.0
    for n, x in enumerate(values, 1):
        m = weight * m + (1.0 - weight) * x
        out.append(m / (1.0 - weight**n))
    return out


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[Any, ...]:
    """The key's value in every row as written (None where a row lacks it)."""
    return tuple(r.get(key) for r in rows)


def split_series(
    rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> tuple[dict[str, float], dict[str, tuple[Any, float]], list[list[str]]]:
    """Sort `keys` into what needs no panel and what does.

    constant  {key: value}: the same finite number in every row that has the key (two rows or
              more), e.g. a penalty rate that stays 0
    single    {key: (step, value)}: a number in one row only, e.g. a final evaluation
    panels    [[key, ...]]: one list per distinct series; keys whose values are equal in every
              row (present in the same rows) share a list, the first-seen key first
    """
    constant: dict[str, float] = {}
    single: dict[str, tuple[Any, float]] = {}
    same: dict[tuple[Any, ...], list[str]] = {}
    for key in keys:
        present = [(r.get("step", i), r[key]) for i, r in enumerate(rows) if key in r]
        values = [_number(v) for _, v in present]
        if len(present) == 1 and values[0] is not None:
            single[key] = (present[0][0], present[0][1])
        elif values and values[0] is not None and all(v == values[0] for v in values):
            constant[key] = present[0][1]
        else:
            same.setdefault(_series(rows, key), []).append(key)
    return constant, single, list(same.values())


def _draw(ax: Any, pts: list[tuple[Any, float]], color: str, smoothing: float | None) -> None:
    """The raw line alone (`smoothing` None or few points), or faint under its smoothing."""
    xs, ys = [s for s, _ in pts], [v for _, v in pts]
    if smoothing is None or len(pts) < MIN_SMOOTHED_POINTS:
        ax.plot(xs, ys, color=color, marker=".", linewidth=1.3)
        return
    ax.plot(xs, ys, color=color, alpha=0.3, linewidth=1.0)
    ax.plot(xs, ema_smooth(ys, smoothing), color=color, linewidth=1.6)


def plot_metrics(
    rows: Sequence[dict[str, Any]],
    panels: Sequence[str | Sequence[str]],
    png: str | Path,
    title: str = "",
    smoothing: float = SMOOTHING,
) -> Path | None:
    """One small panel per entry of `panels` against `step`: a key, or a list of keys that hold
    one series (drawn once, titled with every name). The raw values are drawn faint with their
    `ema_smooth` over them (series of MIN_SMOOTHED_POINTS or more points; fewer, and keys
    matching RAW_ONLY: raw only). None when no row holds any of the keys."""
    from matplotlib.ticker import MaxNLocator

    groups = [[p] if isinstance(p, str) else list(p) for p in panels]
    groups = [g for g in groups if any(_number(r.get(g[0])) is not None for r in rows)]
    if not groups:
        return None
    png = Path(png)
    steps = [r.get("step", i) for i, r in enumerate(rows)]
    cols = min(3, len(groups))
    nrows = math.ceil(len(groups) / cols)
    fig = _figure(4.2 * cols, 2.8 * nrows)
    axes = fig.subplots(nrows, cols, squeeze=False)
    for i, names in enumerate(groups):
        ax = axes[i // cols][i % cols]
        pts = [(s, _number(r.get(names[0]))) for s, r in zip(steps, rows)]
        raw = any(fnmatch.fnmatchcase(k, pat) for k in names for pat in RAW_ONLY)
        pts = [(s, v) for s, v in pts if v is not None]
        _draw(ax, pts, COLORS[i % len(COLORS)], None if raw else smoothing)
        label = " = ".join(names)
        ax.set_title(label if len(label) <= 45 else "\n= ".join(names), fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for j in range(len(groups), nrows * cols):
        axes[j // cols][j % cols].set_visible(False)
    if title:
        fig.suptitle(title)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    keys = [k for g in groups for k in g]
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
