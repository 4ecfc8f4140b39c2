"""The reward package's imports flow one way: no module imports, directly or through others,
a module that imports it back (a circle means a module holds two jobs)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import t1.rewards

PACKAGE = Path(t1.rewards.__file__).parent
# a worker handler or start-up hook named in a string is a dependency too
_NAMED_RE = re.compile(r"^t1\.rewards\.(\w+):\w+$")


def _dependencies(path: Path) -> set[str]:
    """Modules of t1.rewards that `path` imports anywhere in its body, or names for a worker."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _NAMED_RE.match(node.value)
            names = [f"t1.rewards.{m.group(1)}"] if m else []
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["t1", "rewards"]:
                module = parts[2] if len(parts) > 2 else "__init__"
                if (PACKAGE / f"{module}.py").exists():
                    found.add(module)
    found.discard(path.stem)
    return found


def import_graph() -> dict[str, set[str]]:
    return {path.stem: _dependencies(path) for path in sorted(PACKAGE.glob("*.py"))}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_rewards_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) >= 10 and "reward" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    # only the package's front door imports it whole
    assert all("__init__" not in deps for deps in graph.values())


def test_cycle_finder_finds_circles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_dependencies_see_lazy_imports_and_named_handlers(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "def f():\n    from t1.rewards.reward import score_batch\n"
        "H = 't1.rewards.math_verify_guard:verify_inline'\n"
    )
    assert _dependencies(source) == {"reward", "math_verify_guard"}
