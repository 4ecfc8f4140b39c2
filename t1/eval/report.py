"""`t1 report RUN_DIR`: one static, self-contained `RUN_DIR/report.html`.

The page has no JavaScript and loads nothing: figures are PNG files written to RUN_DIR/plots/
(each with its CSV) and embedded as base64 data URIs; sample browsing uses <details> elements.

What it reads, in the run directory and in each stage folder below it (a folder holding any of
these, up to two levels down: e.g. DEMO/sft/, DEMO/rl/; checkpoints/, tb/, wandb/, plots/ are
skipped):

    config.yaml            shown as written
    metrics.jsonl          one object per step with "step"; every numeric key is plotted, raw
                           and smoothed (keys equal at every step share a panel; constant keys
                           and keys logged once are listed in a line instead), grouped:
        reward/*  (reward/mean, reward/accuracy)          penalty/*  (truncated, repetitive, garbage)
        response/* (len_mean, len_max, truncated)         entropy, kl (and entropy/*, kl/*)
        adv/*  (mean, std)                                loss, eval/loss, grad_norm, clip_frac, lr
        eval/* (periodic evaluation)                      tokens_per_s, time/*
        any other numeric key under "Other"
    eval/<name>.json       `t1 eval` summaries: accuracy {mean, lo, hi}, pass@k, maj@k, len_mean,
                           truncated, n_problems, n_samples, breakdown
    eval/<name>.samples.jsonl, samples/step-N.jsonl
                           rows with prompt, response, reward, correct, penalty (others ignored)
    eval/scale.json        `t1 scale` results ({"models": [...]}), drawn as the scaling figure
    plots/*.png            figures written by other stages (the demo's), shown as they are

Anything missing or unreadable is skipped with a note on the page, never an error.
"""

from __future__ import annotations

import base64
import datetime as dt
import fnmatch
import html
import json
import re
from pathlib import Path
from typing import Any

from t1.errors import T1Error
from t1.eval.plots import CURVES_NOTE, numeric_keys, plot_metrics, plot_scaling, split_series
from t1.runs import read_jsonl

# (title, key patterns): each metrics key goes to the first group that matches it
KEY_GROUPS: list[tuple[str, list[str]]] = [
    ("Reward and accuracy", ["reward/*", "reward", "accuracy"]),
    ("Penalty rates", ["penalty/*"]),
    ("Response length and truncation", ["response/*"]),
    ("Entropy and KL", ["entropy", "entropy/*", "kl", "kl/*"]),
    ("Advantages", ["adv/*"]),
    ("Optimisation", ["loss", "loss/*", "eval/loss", "grad_norm", "clip_frac", "lr"]),
    ("Evaluation during training", ["eval/*"]),
    ("Throughput and time", ["tokens_per_s", "time/*"]),
]
SKIP_DIRS = {"checkpoints", "tb", "wandb", "plots", "samples", "eval", "__pycache__"}
STAGE_MARKERS = ("config.yaml", "metrics.jsonl", "samples", "eval")
MAX_SAMPLE_ROWS = 24  # rows shown per samples file
MAX_TEXT = 4000  # characters shown per prompt/response
MAX_SAMPLE_FILES = 12  # newest samples/step-N.jsonl files shown per stage

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222;line-height:1.45}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.4rem 0}
.note{color:#777;font-style:italic}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;white-space:pre-wrap;font-size:.82rem}
details{margin:.3rem 0}summary{cursor:pointer}
.ok{color:#137333;font-weight:bold}.bad{color:#b3261e;font-weight:bold}
.sample{border-left:4px solid #ccc;padding:.2rem .7rem;margin:.5rem 0}
.sample.right{border-color:#34a853}.sample.wrong{border-color:#ea4335}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _img(png: Path, alt: str) -> str:
    """An <img> with the PNG embedded, so report.html stands alone."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _clip(text: Any) -> str:
    s = "" if text is None else str(text)
    return (
        s if len(s) <= MAX_TEXT else s[:MAX_TEXT] + f"\n... ({len(s) - MAX_TEXT} more characters)"
    )


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return _e(v)


def find_stages(run_dir: Path) -> list[Path]:
    """The run directory and its stage folders (up to two levels down) holding run files."""
    found = []

    def visit(d: Path, depth: int) -> None:
        if any((d / m).exists() for m in STAGE_MARKERS):
            found.append(d)
        if depth < 2:
            for child in sorted(p for p in d.iterdir() if p.is_dir()):
                if child.name not in SKIP_DIRS and not child.name.startswith("."):
                    visit(child, depth + 1)

    visit(run_dir, 0)
    return found


def _natural(path: Path) -> list[Any]:
    """Sort key that puts step-2 before step-10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _stage_name(run_dir: Path, stage: Path) -> str:
    rel = stage.relative_to(run_dir).as_posix()
    return run_dir.resolve().name if rel == "." else rel


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-") or "run"


def group_keys(keys: list[str]) -> list[tuple[str, list[str]]]:
    """Metrics keys sorted into KEY_GROUPS (in the groups' pattern order), the rest in Other."""
    taken: set[str] = set()
    groups = []
    for title, patterns in KEY_GROUPS:
        members = []
        for pat in patterns:
            members += [k for k in keys if k not in taken and fnmatch.fnmatchcase(k, pat)]
            taken.update(members)
        if members:
            groups.append((title, members))
    rest = [k for k in keys if k not in taken and k != "time"]
    if rest:
        groups.append(("Other", rest))
    return groups


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _curves(run_dir: Path, stage: Path, name: str) -> str:
    path = stage / "metrics.jsonl"
    if not path.is_file():
        return ""
    rows = read_jsonl(path)
    keys = numeric_keys(rows)
    if not keys:
        return f"<h3>{_e(name)}</h3>" + _note(f"{path.name} holds no numeric metrics")
    constant, single, panels = split_series(rows, keys)
    parts = [f"<h3>{_e(name)} <small>({len(rows)} rows of metrics.jsonl)</small></h3>"]
    if constant:
        listed = ", ".join(f"{k} = {_value(v)}" for k, v in constant.items())
        parts.append(f"<p>constant: {_e(listed)}</p>")
    if single:
        listed = ", ".join(f"{k} = {_value(v)} (step {s})" for k, (s, v) in single.items())
        parts.append(f"<p>logged once: {_e(listed)}</p>")
    by_first = {p[0]: p for p in panels}
    for title, members in group_keys(list(by_first)):
        png = run_dir / "plots" / f"curves-{_slug(name)}-{_slug(title)}.png"
        drawn = [by_first[k] for k in members]
        if plot_metrics(rows, drawn, png, title=f"{name}: {title}"):
            parts.append(_img(png, f"{name}: {title}"))
    return "\n".join(parts)


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _eval_table(evals: list[tuple[str, dict]]) -> str:
    ks = sorted(
        {str(k) for _, e in evals for n in ("pass@k", "maj@k") for k in e.get(n) or {}},
        key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k),
    )
    wilson = any("wilson_lo" in (e.get("accuracy") or {}) for _, e in evals)
    head = ["stage", "name", "model", "problems", "samples", "accuracy", "95% CI"]
    head += ["Wilson CI (n=1)"] if wilson else []
    head += [f"pass@{k}" for k in ks] + [f"maj@{k}" for k in ks] + ["mean len", "truncated"]
    out = [
        "<table><tr>"
        + "".join(
            f'<th class="l">{_e(h)}</th>' if i < 3 else f"<th>{_e(h)}</th>"
            for i, h in enumerate(head)
        )
        + "</tr>"
    ]
    for stage, e in evals:
        acc = e.get("accuracy") or {}
        cells = [stage, e.get("name", ""), e.get("model", "")]
        row = "".join(f'<td class="l">{_e(c)}</td>' for c in cells)
        vals = [
            e.get("n_problems"),
            e.get("n_samples"),
            acc.get("mean"),
            f"[{_fmt(acc.get('lo'))}, {_fmt(acc.get('hi'))}]" if acc else None,
        ]
        if wilson:
            lo, hi = acc.get("wilson_lo"), acc.get("wilson_hi")
            vals.append(f"[{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else None)
        vals += [e.get("pass@k", {}).get(k) for k in ks] + [e.get("maj@k", {}).get(k) for k in ks]
        vals += [e.get("len_mean"), e.get("truncated")]
        row += "".join(f"<td>{_fmt(v)}</td>" for v in vals)
        out.append(f"<tr>{row}</tr>")
    out.append("</table>")
    for stage, e in evals:
        for key, values in (e.get("breakdown") or {}).items():
            rows = "".join(
                f'<tr><td class="l">{_e(v)}</td><td>{_fmt(s.get("n_problems"))}</td>'
                f"<td>{_fmt((s.get('accuracy') or {}).get('mean'))}</td>"
                f"<td>[{_fmt((s.get('accuracy') or {}).get('lo'))}, "
                f"{_fmt((s.get('accuracy') or {}).get('hi'))}]</td></tr>"
                for v, s in values.items()
            )
            out.append(
                f"<details><summary>{_e(stage)} / {_e(e.get('name', ''))}: accuracy by "
                f'{_e(key)}</summary><table><tr><th class="l">{_e(key)}</th><th>problems</th>'
                f"<th>accuracy</th><th>95% CI</th></tr>{rows}</table></details>"
            )
    return "\n".join(out)


def _scaling(run_dir: Path, name: str, scale: dict) -> str:
    models = [m for m in scale.get("models", []) if isinstance(m, dict) and m.get("sequential")]
    if not models:
        return _note(f"{name}: eval/scale.json holds no curves")
    png = plot_scaling(models, run_dir / "plots" / f"scale-{_slug(name)}.png")
    rows = []
    for m in models:
        for p in m["sequential"]:
            rows.append((m["model"], "sequential", p["budget"], p))
        for p in m.get("parallel", []):
            rows.append((m["model"], f"maj@{p['k']} x {p['per_sample_budget']}", p["budget"], p))
    body = "".join(
        f'<tr><td class="l">{_e(m)}</td><td class="l">{_e(c)}</td><td>{_fmt(b)}</td>'
        f"<td>{_fmt(p['accuracy'])}</td><td>[{_fmt(p['lo'])}, {_fmt(p['hi'])}]</td></tr>"
        for m, c, b, p in rows
    )
    table = (
        '<details><summary>data</summary><table><tr><th class="l">model</th><th class="l">curve'
        f"</th><th>budget</th><th>accuracy</th><th>95% CI</th></tr>{body}</table></details>"
    )
    return f"<h3>{_e(name)}</h3>" + _img(png, f"{name}: inference scaling") + table


def _sample_rows(rows: list[dict]) -> str:
    parts = []
    for i, r in enumerate(rows[:MAX_SAMPLE_ROWS]):
        correct = bool(r.get("correct"))
        mark = (
            '<span class="ok">&#10003; right</span>'
            if correct
            else ('<span class="bad">&#10007; wrong</span>')
        )
        extra = [f"reward {_fmt(r.get('reward'))}"] if r.get("reward") is not None else []
        if r.get("penalty"):
            extra.append(f"penalty: {_e(r['penalty'])}")
        if r.get("answer") is not None:
            extra.append(f"answer: {_e(r['answer'])}")
        if r.get("reference") is not None:
            extra.append(f"reference: {_e(r['reference'])}")
        parts.append(
            f'<div class="sample {"right" if correct else "wrong"}">#{i} {mark} '
            f"{' · '.join(extra)}"
            f"<details><summary>prompt</summary><pre>{_e(_clip(r.get('prompt')))}</pre></details>"
            f"<pre>{_e(_clip(r.get('response')))}</pre></div>"
        )
    if len(rows) > MAX_SAMPLE_ROWS:
        parts.append(_note(f"{len(rows) - MAX_SAMPLE_ROWS} more rows in the file"))
    return "\n".join(parts)


def _samples_files(stage: Path) -> list[Path]:
    steps = []
    for p in (stage / "samples").glob("step-*.jsonl"):
        n = p.stem.removeprefix("step-")
        if n.isdigit():
            steps.append((int(n), p))
    newest = [p for _, p in sorted(steps)][-MAX_SAMPLE_FILES:]
    return newest + sorted((stage / "eval").glob("*.samples.jsonl"))


def _samples(run_dir: Path, stage: Path, name: str) -> str:
    parts = []
    for path in _samples_files(stage):
        rows = [r for r in read_jsonl(path) if isinstance(r, dict)]
        right = sum(bool(r.get("correct")) for r in rows)
        label = f"{name}: {path.relative_to(stage).as_posix()}"
        parts.append(
            f"<details><summary>{_e(label)} — {right}/{len(rows)} right</summary>"
            f"{_sample_rows(rows)}</details>"
        )
    return "\n".join(parts)


def _config(stage: Path, name: str) -> str:
    path = stage / "config.yaml"
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return f"<details><summary>{_e(name)}/config.yaml</summary><pre>{_e(text)}</pre></details>"


def _other_figures(run_dir: Path, stages: list[Path]) -> str:
    parts = []
    for stage in dict.fromkeys([run_dir, *stages]):
        redrawn = (stage / "eval" / "scale.json").is_file()
        for png in sorted((stage / "plots").glob("*.png")):
            if png.parent == run_dir / "plots" and png.name.startswith(("curves-", "scale-")):
                continue  # drawn by this report
            if redrawn and png.name.startswith(("scale", "scaling")):
                continue  # the scaling section redraws it from eval/scale.json
            parts.append(_img(png, png.name) + f"<p>{_e(png.relative_to(run_dir).as_posix())}</p>")
    return "\n".join(parts)


def _safe(fn: Any, *args: Any) -> str:
    """A section's HTML, or a note saying why it could not be drawn: a run directory written by
    an older or crashed run must still give a report."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - any malformed input becomes a note, never a crash
        return _note(f"could not show this part ({type(e).__name__}: {e})")


def render(run_dir: Path) -> str:
    """The report page of `run_dir` (writes its figures into run_dir/plots/)."""
    stages = find_stages(run_dir)
    named = [(_stage_name(run_dir, s), s) for s in stages]
    evals, scales = [], []
    for name, s in named:
        for path in sorted((s / "eval").glob("*.json"), key=_natural):
            obj = _read_json(path)
            if obj is None:
                continue
            if path.stem == "scale" or "models" in obj:
                scales.append((name, obj))
            elif "accuracy" in obj:
                evals.append((name, obj))
    curves = "\n".join(_safe(_curves, run_dir, s, n) for n, s in named)
    sections = [
        ("Evaluation", _safe(_eval_table, evals) if evals else _note("no eval/*.json found")),
        (
            "Inference scaling",
            "\n".join(_safe(_scaling, run_dir, n, o) for n, o in scales)
            or _note("no eval/scale.json found"),
        ),
        (
            "Training curves",
            curves and _note(CURVES_NOTE) + curves or _note("no metrics.jsonl found"),
        ),
        ("Other figures", _safe(_other_figures, run_dir, stages) or _note("none")),
        (
            "Sample rollouts",
            "\n".join(_safe(_samples, run_dir, s, n) for n, s in named)
            or _note("no samples found"),
        ),
        (
            "Config",
            "\n".join(_safe(_config, s, n) for n, s in named) or _note("no config.yaml found"),
        ),
    ]
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = "\n".join(f"<h2>{_e(t)}</h2>\n{content}" for t, content in sections)
    stage_list = ", ".join(_e(n) for n, _ in named) or "none"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>t1 report: {_e(run_dir.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>t1 report: {_e(run_dir.name)}</h1>"
        f'<p class="note">{_e(run_dir.resolve())} · written {stamp} · stages: {stage_list}</p>'
        f"{body}</body></html>\n"
    )


def build_report(run_dir: str | Path) -> int:
    """`t1 report RUN_DIR`: write RUN_DIR/report.html; returns the exit code (0)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise T1Error(f"run directory not found: {run_dir}")
    page = render(run_dir)
    out = run_dir / "report.html"
    tmp = out.with_name(".report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0
