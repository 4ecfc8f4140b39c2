"""`t1 report`: the page's content, its robustness, and a real browser loading it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from run_fixture import make_run

from t1.cli import main
from t1.errors import T1Error
from t1.eval.report import build_report, find_stages, group_keys


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("report"))
    assert build_report(run) == 0
    return run, (run / "report.html").read_text(encoding="utf-8")


def test_stages_are_found_in_nested_folders(report):
    run, _ = report
    assert [p.relative_to(run).as_posix() for p in find_stages(run)] == [".", "rl", "sft"]


def test_keys_are_grouped_by_meaning():
    groups = dict(group_keys(["reward/mean", "penalty/garbage", "kl", "entropy", "lr", "weird"]))
    assert groups["Reward and accuracy"] == ["reward/mean"]
    assert groups["Penalty rates"] == ["penalty/garbage"]
    assert groups["Entropy and KL"] == ["entropy", "kl"]
    assert groups["Optimisation"] == ["lr"]
    assert groups["Other"] == ["weird"]


def test_page_has_every_section_and_embedded_figures(report):
    run, page = report
    for title in (
        "Evaluation",
        "Inference scaling",
        "Training curves",
        "Sample rollouts",
        "Config",
    ):
        assert f"<h2>{title}</h2>" in page
    for group in ("Reward and accuracy", "Penalty rates", "Entropy and KL", "Throughput and time"):
        assert f"rl: {group}" in page
    # rl: 7 groups + Other; sft: Optimisation; the scaling figure; plots/extra.png -> 11 images
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 11
    # every figure is also a PNG beside its CSV
    pngs = sorted((run / "plots").glob("*.png"))
    assert all(p.with_suffix(".csv").is_file() for p in pngs)
    assert "0.400" in page and "[0.300, 0.500]" in page  # the eval table


def test_constant_and_repeated_series_get_no_panel_of_their_own(report):
    run, page = report
    constant = (
        "constant: penalty/repetitive = 0.05, response/len_max = 64, adv/mean = 0, "
        "clip_frac = 0, lr = 1e-05, time/generate = 1.2, time/update = 0.4"
    )
    assert f"<p>{constant}</p>" in page
    assert page.count("constant: ") == 1  # sft has no constant key
    # penalty/truncated and response/truncated are equal at every step: one panel, both names
    header = (run / "plots" / "curves-rl-Penalty-rates.csv").read_text().splitlines()[0]
    assert header == "step,penalty/truncated,response/truncated,penalty/garbage"
    header = (run / "plots" / "curves-rl-Response-length-and-truncation.csv").read_text()
    assert header.splitlines()[0] == "step,response/len_mean"
    assert "exponential moving average (weight 0.8" in page


def test_samples_marked_and_escaped(report):
    _, page = report
    # eval samples (3 rows) and two RL steps (3 rows and 1 row): 3 right, 4 wrong
    assert page.count("&#10003; right") == 3
    assert page.count("&#10007; wrong") == 4
    assert "penalty: repetitive" in page
    assert "<script" not in page  # model output is escaped, and the page has no scripts
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert not re.search(r'(src|href)="https?:', page)  # nothing fetched from outside


def test_empty_and_missing_run_dirs(tmp_path, capsys):
    assert build_report(tmp_path) == 0
    page = (tmp_path / "report.html").read_text()
    assert "no metrics.jsonl found" in page and "no eval/*.json found" in page
    with pytest.raises(T1Error, match="run directory not found"):
        build_report(tmp_path / "nope")
    assert main(["report", str(tmp_path / "nope")]) == 1
    assert "run directory not found" in capsys.readouterr().err


def test_malformed_pieces_become_notes(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "bad.json").write_text('{"accuracy": "high", "pass@k": 3}')
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": "nan"}\n{"step": 2, "lo')
    assert build_report(tmp_path) == 0
    page = (tmp_path / "report.html").read_text()
    assert "could not show this part" in page
    assert "holds no numeric metrics" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHECK = """<script>window.addEventListener("load", () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute("data-images", imgs.length);
  document.body.setAttribute("data-bad-images", bad);
});</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_loads_in_headless_chromium(report, tmp_path):
    run, page = report
    # a copy beside the report with a checker script added (the report itself has no script)
    probe = run / ".report-probe.html"
    probe.write_text(page.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--dump-dom", probe.resolve().as_uri(),
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'data-images="(\d+)" data-bad-images="(\d+)"', done.stdout)
    assert found, done.stdout[:500]
    assert found.groups() == ("11", "0")  # every image decoded
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []


def test_periodic_evals_are_listed_in_step_order(tmp_path):
    (tmp_path / "eval").mkdir()
    for step in (10, 2):
        summary = {"name": f"step-{step}", "accuracy": {"mean": step / 100, "lo": 0, "hi": 1}}
        (tmp_path / "eval" / f"step-{step}.json").write_text(json.dumps(summary))
    build_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.index(">step-2<") < page.index(">step-10<")


def test_keys_logged_once_or_constant_are_listed(tmp_path):
    rows = [{"step": s, "loss": 1.0 / s, "bad_steps": 0} for s in range(1, 13)]
    rows[-1]["eval/loss"] = 0.123456
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<p>constant: bad_steps = 0</p>" in page
    assert "<p>logged once: eval/loss = 0.1235 (step 12)</p>" in page
    assert page.count('<img src="data:image/png;base64,') == 1  # loss alone is drawn
