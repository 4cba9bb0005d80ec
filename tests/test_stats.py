"""Statistics checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from pytest_ale.reports.summary import Group, Row
from pytest_ale.stats import drop_p_value, holm, mean_interval, pass_at_k, t_quantile


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer failures than k: some draw must pass
        (3, 0, 2, 0.0),
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (1, 1, 1, 1.0),
    ],
)
def test_pass_at_k_unbiased_estimator(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (3, 4, 1), (0, 0, 1), (3, 1, 0)])
def test_pass_at_k_refuses_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_student_t_quantiles_match_tables() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-3)
    assert t_quantile(0.975, 3) == pytest.approx(3.1824, abs=1e-3)
    assert t_quantile(0.975, 30) == pytest.approx(2.0423, abs=1e-3)
    assert t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-6)


def test_mean_interval_by_hand() -> None:
    # scores 0.2, 0.4, 0.6, 0.8: mean 0.5, sd = sqrt(0.2/3), se = sd/2, t(3) = 3.18245
    low, high = mean_interval([0.2, 0.4, 0.6, 0.8])
    half = 3.18245 * math.sqrt(0.2 / 3) / 2
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half), abs=1e-4)
    assert mean_interval([0.0, 1.0, 1.0, 1.0]) == pytest.approx((0.0, 1.0))  # clipped to [0, 1]
    assert mean_interval([0.7]) == (0.7, 0.7)


def test_group_statistics_by_hand() -> None:
    rows = [
        Row("a", "fin", "loan", "base", t, status, score)
        for t, (status, score) in enumerate(
            [("passed", 1.0), ("failed", 0.5), ("failed", 0.0), ("timeout", 0.0), ("error", None)], 1
        )
    ] + [Row("a", "fin", "audit", "base", 1, "passed", 1.0)]
    stats = Group(rows).as_dict()
    assert stats["trials"] == 6 and stats["graded"] == 5 and stats["errors"] == 1
    assert stats["timeouts"] == 1 and stats["passed"] == 2
    # the error trial counts as 0 in every figure (a fault never improves one) ...
    assert stats["mean_score"] == pytest.approx(2.5 / 6)
    assert stats["pass_rate"] == pytest.approx(2 / 6)
    # ... and the mean over graded trials alone is kept beside it
    assert stats["mean_graded"] == pytest.approx(2.5 / 5)
    # loan: n=5 (the error is a trial that did not pass), c=1; audit: n=1, c=1.
    # pass@1 = mean(1/5, 1); pass@2 = loan only: 1 - C(4,2)/C(5,2)
    assert stats["pass_at_k"]["1"] == pytest.approx((0.2 + 1.0) / 2)
    assert stats["pass_at_k"]["2"] == pytest.approx(1 - 6 / 10)
    assert stats["pass_at_k"]["5"] == pytest.approx(1.0)


def test_permutation_test_exact_values() -> None:
    # all five baseline trials pass, all five new ones fail: only 1 of C(10,5) labelings is as extreme
    assert drop_p_value([([1] * 5, [0] * 5)]) == pytest.approx(1 / 252)
    # identical samples: every labeling is at least as extreme as none at all
    assert drop_p_value([([1, 0, 1], [1, 0, 1])]) > 0.5
    # stratified: an unchanged second task adds no evidence and takes none away (1 / C(6,3))
    assert drop_p_value([([1] * 3, [0] * 3), ([0.5] * 3, [0.5] * 3)]) == pytest.approx(1 / 20)
    # Monte Carlo path (too many labelings to enumerate) stays close to the exact answer
    big = [([1.0] * 12, [0.0] * 12)]
    assert drop_p_value(big, exact_limit=10) < 0.001


def test_holm_bonferroni() -> None:
    assert holm({"a": 0.01, "b": 0.03, "c": 0.04}, 0.05) == {"a"}  # 0.03 > 0.05/2: stop
    assert holm({"a": 0.01, "b": 0.02, "c": 0.04}, 0.05) == {"a", "b", "c"}
    assert holm({"a": 0.2}, 0.05) == set()
