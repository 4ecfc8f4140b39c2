"""The unbiased pass@k estimator (Chen et al. 2021), used to evaluate T1 (arXiv 2501.11651).

From n samples of which c are correct, the probability that at least one of k samples drawn
without replacement is correct:

    pass@k = 1 − C(n − c, k) / C(n, k)

computed as (C(n, k) − C(n − c, k)) / C(n, k) with exact integers (Python's int / int division
rounds correctly), so it holds for large n where the float product form drifts.
"""

from __future__ import annotations

import math
import operator


def _as_int(name: str, value: int) -> int:
    """`value` as an int; numpy and 0-dim torch integers are accepted, bools and floats not."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int, got {value!r}") from None


def pass_at_k(n: int, c: int, k: int) -> float:
    """`1 − C(n−c, k)/C(n, k)`: chance that k of the n samples include a correct one."""
    n, c, k = _as_int("n", n), _as_int("c", c), _as_int("k", k)
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0  # every k-subset holds a correct sample
    total = math.comb(n, k)
    return (total - math.comb(n - c, k)) / total
