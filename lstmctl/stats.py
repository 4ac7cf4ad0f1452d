"""Statistics over seeds: the spread of one group's values, and whether two groups differ beyond it.

    summarize([0.91, 0.92, 0.90])   -> {"mean", "std", "n", "ci95": [lo, hi]}
    welch(a_values, b_values)       -> the difference b - a, its 95% interval, t, df, p and a verdict

std is the sample standard deviation (ddof=1). The 95% interval of a mean is mean +- t(0.975, n-1) *
std / sqrt(n). Two groups are compared with Welch's t-test (two-sided, no assumption of equal
variances): t = (mean_b - mean_a) / se with se = sqrt(var_a/n_a + var_b/n_b), and the
Welch-Satterthwaite degrees of freedom df = se^4 / ((var_a/n_a)^2/(n_a-1) + (var_b/n_b)^2/(n_b-1)).
The verdict is "beyond seed noise" when p < 0.05 (the same as: the 95% interval of the difference
leaves out 0), else "within seed noise". The t distribution is scipy's (scipy.stats.t).

A leaf: it imports nothing from lstmctl. scipy.stats is imported when a quantile or p-value is first
needed, not at the top: importing it takes 1.5-2 s, which every `lstmctl train` (it imports this
module through groups.py) and `lstmctl runs` would otherwise pay for nothing.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

ALPHA = 0.05
TEST = "Welch's t-test (two-sided, unequal variances)"
BEYOND, WITHIN = "beyond seed noise", "within seed noise"


def finite_values(values: Iterable[Any]) -> list[float]:
    """The values that are real finite numbers (bools, None, NaN and text left out)."""
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def _mean_var(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    mean = math.fsum(xs) / n
    return mean, math.fsum((x - mean) ** 2 for x in xs) / (n - 1)


def _t():
    from scipy import stats  # deferred: see the module docstring

    return stats.t


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t distribution with df degrees of freedom."""
    return float(_t().ppf(q, df))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for T ~ Student's t with df degrees of freedom."""
    return float(2 * _t().sf(abs(t), df))


def summarize(values: Iterable[Any]) -> dict[str, Any]:
    """Mean, sample std, n and the 95% interval of the mean (std and interval None below two values)."""
    xs = finite_values(values)
    n = len(xs)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci95": None}
    if n == 1:
        return {"mean": xs[0], "std": None, "n": 1, "ci95": None}
    mean, var = _mean_var(xs)
    std = math.sqrt(var)
    half = t_quantile(1 - ALPHA / 2, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci95": [mean - half, mean + half]}


def welch(a: Iterable[Any], b: Iterable[Any]) -> dict[str, Any]:
    """Welch's t-test of mean(b) - mean(a); each side needs at least two finite values (ValueError otherwise)."""
    xa, xb = finite_values(a), finite_values(b)
    if len(xa) < 2 or len(xb) < 2:
        raise ValueError(f"Welch's t-test needs at least two values on each side, got {len(xa)} and {len(xb)}")
    (ma, va), (mb, vb) = _mean_var(xa), _mean_var(xb)
    na, nb = len(xa), len(xb)
    sa, sb = va / na, vb / nb
    diff = mb - ma
    se = math.sqrt(sa + sb)
    if se == 0.0:  # no spread on either side: df is undefined, the difference is exact
        t = df = None
        p = 1.0 if diff == 0 else 0.0
        ci = [diff, diff]
    else:
        t = diff / se
        df = (sa + sb) ** 2 / (sa**2 / (na - 1) + sb**2 / (nb - 1))
        p = t_two_sided_p(t, df)
        half = t_quantile(1 - ALPHA / 2, df) * se
        ci = [diff - half, diff + half]
    return {
        "difference": diff,
        "ci95": ci,
        "p_value": p,
        "t": t,
        "df": df,
        "test": TEST,
        "alpha": ALPHA,
        "verdict": BEYOND if p < ALPHA else WITHIN,
        "n": [na, nb],
        "mean": [ma, mb],
        "std": [math.sqrt(va), math.sqrt(vb)],
    }
