"""`t1.algo` stays a leaf: no imports from the rest of `t1`, every public name re-exported."""

from __future__ import annotations

import ast
from pathlib import Path

import t1.algo

ALGO = Path(t1.algo.__file__).parent


def test_imports_nothing_from_t1() -> None:
    for path in sorted(ALGO.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "t1" or n.startswith("t1.") for n in names), (path.name, names)


def test_contract_names_are_exported() -> None:
    required = {
        "rloo_advantages",
        "group_advantages",
        "kl_per_token",
        "sequence_kl",
        "t1_advantages",
        "token_entropy",
        "policy_loss",
        "ema_update_",
        "select_samples",
        "pass_at_k",
        "ADVANTAGES",
        "KL_ESTIMATORS",
        "LOSS_AGGREGATIONS",
    }
    assert required <= set(t1.algo.__all__)
    for name in t1.algo.__all__:
        assert getattr(t1.algo, name) is not None
