"""Statistics over trials: means with Student-t intervals, pass@k, and the one-sided
stratified permutation test the release gate uses. Standard library only.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean, clipped to [0, 1] (scores live there)."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    m = mean(values)
    if n == 1:
        return (m, m)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return (max(0.0, m - half), min(1.0, m + half))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k over ``n`` trials with ``c`` passes: 1 - C(n-c, k) / C(n, k)."""
    if k <= 0 or n <= 0 or k > n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 < k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


# -- Student's t, through the regularized incomplete beta function ----------------------
def t_cdf(t: float, df: float) -> float:
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection)."""
    low, high = -1e3, 1e3
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """Lentz's continued fraction for the incomplete beta function."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-14:
            break
    return h


# -- the release gate's test -------------------------------------------------------------
def drop_p_value(
    strata: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    exact_limit: int = 20000,
    samples: int = 20000,
    seed: int = 0,
) -> float:
    """One-sided p-value that the *new* scores are lower than the *baseline* ones.

    ``strata`` is a list of ``(baseline_scores, new_scores)``, one per task: labels are
    permuted within each task, so tasks with different difficulty are never mixed.
    The statistic is the sum over tasks of (baseline mean - new mean). Exact when the
    number of relabelings is at most ``exact_limit``, else Monte Carlo with a fixed seed.
    """
    usable = [(list(b), list(n)) for b, n in strata if b and n]
    if not usable:
        return 1.0

    def statistic(groups: list[tuple[list[float], list[float]]]) -> float:
        return sum(mean(b) - mean(n) for b, n in groups)

    observed = statistic(usable)
    sizes = [math.comb(len(b) + len(n), len(b)) for b, n in usable]
    total = math.prod(sizes)
    at_least = 0
    if total <= exact_limit:
        choices = [list(itertools.combinations(range(len(b) + len(n)), len(b))) for b, n in usable]
        for combo in itertools.product(*choices):
            groups = []
            for (b, n), picked in zip(usable, combo, strict=True):
                pooled = b + n
                chosen = set(picked)
                groups.append(
                    ([pooled[i] for i in picked], [v for i, v in enumerate(pooled) if i not in chosen])
                )
            at_least += statistic(groups) >= observed - 1e-12
        return at_least / total
    rng = random.Random(seed)
    for _ in range(samples):
        groups = []
        for b, n in usable:
            pooled = b + n
            rng.shuffle(pooled)
            groups.append((pooled[: len(b)], pooled[len(b) :]))
        at_least += statistic(groups) >= observed - 1e-12
    return (at_least + 1) / (samples + 1)


def holm(p_values: dict[str, float], alpha: float) -> set[str]:
    """Names whose p-value stays significant under Holm-Bonferroni at family level ``alpha``."""
    ordered = sorted(p_values.items(), key=lambda kv: kv[1])
    significant: set[str] = set()
    for rank, (name, p) in enumerate(ordered):
        if p > alpha / (len(ordered) - rank):
            break
        significant.add(name)
    return significant
