"""Training-curve figures: the smoothing maths, which series get a panel, and the PNG/CSV pair."""

from __future__ import annotations

import csv
import math

import pytest

from t1.eval.plots import MIN_SMOOTHED_POINTS, ema_smooth, plot_metrics, split_series


def test_ema_smooth_by_hand():
    # w = 0.5, x = 1, 3, 5: s_n = sum w^(n-i) x_i / sum w^(n-i)
    #   s_1 = 1
    #   s_2 = (0.5*1 + 3) / 1.5 = 7/3
    #   s_3 = (0.25*1 + 0.5*3 + 5) / 1.75 = 6.75 / 1.75 = 27/7
    # a handful of float operations on numbers near 1: each result within a few ulps
    # (|error| < 8 * 2^-52 * 4 < 1e-14)
    got = ema_smooth([1.0, 3.0, 5.0], 0.5)
    for g, want in zip(got, [1.0, 7 / 3, 27 / 7]):
        assert math.isclose(g, want, rel_tol=0, abs_tol=1e-14)
    # debiased: a constant series stays at its value from the first point (no ramp up from 0)
    assert all(math.isclose(v, 2.0, abs_tol=1e-14) for v in ema_smooth([2.0] * 20, 0.9))
    # w = 0 is no smoothing; the weight must be below 1
    assert ema_smooth([4.0, -1.0, 7.5], 0.0) == [4.0, -1.0, 7.5]
    assert ema_smooth([], 0.8) == []
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ema_smooth([1.0], 1.0)


def test_ema_smooth_matches_the_recursive_form():
    # TensorBoard's recursion (last = w*last + (1-w)*x; smoothed = last / (1 - w^n)) against the
    # closed form written out: both sum the same 30 terms of size <= 1 in a different order,
    # so they agree to 30 * 2^-52 relative error (~7e-15); 1e-12 leaves room
    xs = [math.sin(i) + 0.1 * i for i in range(30)]
    w = 0.8
    for n, got in enumerate(ema_smooth(xs, w), 1):
        num = sum(w ** (n - i) * xs[i - 1] for i in range(1, n + 1))
        den = sum(w ** (n - i) for i in range(1, n + 1))
        assert math.isclose(got, num / den, rel_tol=0, abs_tol=1e-12)


def test_split_series_constant_single_and_identical():
    rows = [
        {
            "step": s,
            "reward/mean": s / 10,
            "penalty/truncated": 0.5 - s / 20,
            "response/truncated": 0.5 - s / 20,
            "samples/trained": 64,
            "bad_steps": 0,
            "lr": 1e-5,
            "grad_norm": "nan" if s == 2 else 1.0,
        }
        for s in range(1, 5)
    ]
    rows[-1]["eval/accuracy"] = 0.25
    rows[1]["eval/loss"] = 2.0
    rows[3]["eval/loss"] = 1.5
    keys = [k for k in rows[0] if k != "step"] + ["eval/accuracy", "eval/loss"]
    constant, single, panels = split_series(rows, keys)
    assert constant == {"samples/trained": 64, "bad_steps": 0, "lr": 1e-5}
    assert single == {"eval/accuracy": (4, 0.25)}
    assert panels == [
        ["reward/mean"],
        ["penalty/truncated", "response/truncated"],  # equal at every step: one panel
        ["grad_norm"],  # 1.0 everywhere but a NaN at step 2: not constant
        ["eval/loss"],  # two points, not equal
    ]


def test_series_equal_where_present_but_present_in_other_rows_are_not_merged():
    rows = [{"step": 1, "a": 1.0, "b": 1.0}, {"step": 2, "a": 2.0}, {"step": 3, "a": 3.0, "b": 3.0}]
    _, _, panels = split_series(rows, ["a", "b"])
    assert panels == [["a"], ["b"]]


def test_plot_metrics_draws_raw_and_smoothed_lines(tmp_path):
    n = MIN_SMOOTHED_POINTS
    rows = [{"step": s, "x": float(s % 3), "y": float(s % 3), "z": 1.0 * s} for s in range(n)]
    short = [{"step": s, "w": float(s)} for s in range(n - 1)]
    png = plot_metrics(rows, [["x", "y"], "z"], tmp_path / "m.png")
    assert png.is_file()
    with open(png.with_suffix(".csv"), newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["step", "x", "y", "z"]  # every name of a shared panel is a column
    assert len(table) == n + 1
    assert plot_metrics(short, ["w"], tmp_path / "w.png").is_file()
    assert plot_metrics(rows, ["missing"], tmp_path / "none.png") is None


def test_plot_metrics_lines(tmp_path, monkeypatch):
    """What each panel draws: a faint raw line under the smoothed one, or the raw line alone."""
    from matplotlib.axes import Axes

    drawn: list[tuple[list, list, dict]] = []
    real_plot = Axes.plot

    def spy(self, xs, ys, *args, **kwargs):
        drawn.append((list(xs), list(ys), kwargs))
        return real_plot(self, xs, ys, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    ys = [0.0, 1.0] * (MIN_SMOOTHED_POINTS // 2 + 1)
    rows = [{"step": s, "v": y} for s, y in enumerate(ys)]
    plot_metrics(rows, ["v"], tmp_path / "v.png")
    (_, raw, raw_kw), (_, smooth, smooth_kw) = drawn
    assert raw == ys and raw_kw["alpha"] < 1 and "alpha" not in smooth_kw
    assert smooth == ema_smooth(ys)
    drawn.clear()
    plot_metrics(rows[:3], ["v"], tmp_path / "v3.png")
    assert len(drawn) == 1 and drawn[0][1] == ys[:3]  # too few points: raw only
    drawn.clear()
    lr = [{"step": s, "lr": 1e-3 * s} for s in range(2 * MIN_SMOOTHED_POINTS)]
    plot_metrics(lr, ["lr"], tmp_path / "lr.png")
    assert len(drawn) == 1  # a schedule is drawn exactly, never averaged
