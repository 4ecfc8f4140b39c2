"""Imports flow one way between t1's packages: a package uses only those below it.

The order, lowest first (DESIGN.md "Architecture"):

    t1 (version), t1.errors
    t1.presets                     prompt presets (config fills them in)
    t1.config
    t1.runs, t1.progress           run directories, checkpoint discovery, progress bars
    t1.algo, t1.rewards, t1.models pure maths; verifiers; loading models and building prompts
    t1.rollout                     generation engines
    t1.data                        records, sources, synthetic tasks, trace synthesis
    t1.eval                        evaluation and inference scaling
    t1.train                       the SFT and RL loops
    t1.demo, t1.cli                entry points
    t1.__main__                    `python -m t1`

Every import counts, those inside functions too: a lazy import upward is still a dependency
upward. Packages on one line do not import each other. Inside a package anything goes (circles
within a package are the package's own business).
"""

from __future__ import annotations

import ast
from pathlib import Path

import t1

ROOT = Path(t1.__file__).parent
LAYERS = [
    {"t1", "t1.errors"},
    {"t1.presets"},
    {"t1.config"},
    {"t1.runs", "t1.progress"},
    {"t1.algo", "t1.rewards", "t1.models"},
    {"t1.rollout"},
    {"t1.data"},
    {"t1.eval"},
    {"t1.train"},
    {"t1.demo", "t1.cli"},
    {"t1.__main__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def unit_of(module: str) -> str:
    """The package (or top-level module) a dotted module name belongs to."""
    parts = module.split(".")
    return ".".join(parts[:2])


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of a t1 module in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        found += [(node.lineno, n) for n in names if n == "t1" or n.startswith("t1.")]
    return found


def test_every_package_has_a_layer() -> None:
    missing = {unit_of(name) for name, _ in modules()} - set(RANK)
    assert not missing, f"add these to LAYERS (and DESIGN.md): {sorted(missing)}"


def test_imports_point_down() -> None:
    upward = [
        f"{path.relative_to(ROOT.parent)}:{line} imports {target}"
        for name, path in modules()
        for line, target in imports_of(path)
        if unit_of(target) != unit_of(name) and RANK[unit_of(target)] >= RANK[unit_of(name)]
    ]
    assert not upward, "\n".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    # the check itself: a data module importing the trainer is found, at module level or lazily
    bad = tmp_path / "bad.py"
    bad.write_text("import t1.train.rl\n\ndef f():\n    from t1.train import checkpoint\n")
    found = [t for _, t in imports_of(bad)]
    assert found == ["t1.train.rl", "t1.train"]
    assert all(RANK[unit_of(t)] > RANK["t1.data"] for t in found)
