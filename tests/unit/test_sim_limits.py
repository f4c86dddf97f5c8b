"""The local exchange's own rate limiter, checked against Kalshi's documented rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kmm.sim
from kmm.sim._limits import TIER_LIMITS, BucketLimits, RateLimiter, VenueBucket

T0 = 5_000_000_000
SECOND = 1_000_000_000
BASIC_WRITE = BucketLimits(refill_rate=100, bucket_capacity=100)


@pytest.mark.parametrize(
    ("tier", "read", "write"),
    [
        # (refill per second, capacity): the docs' tier table and its capacity rule
        ("basic", (200, 400), (100, 100)),
        ("advanced", (300, 600), (300, 600)),
        ("expert", (600, 600), (600, 1200)),
        ("premier", (1000, 1000), (1000, 2000)),
        ("paragon", (2000, 2000), (2000, 4000)),
        ("prime", (4000, 4000), (4000, 8000)),
        ("prestige", (10000, 10000), (8000, 16000)),
    ],
)
def test_tiers_follow_the_documented_budgets_and_capacities(
    tier: str, read: tuple[int, int], write: tuple[int, int]
) -> None:
    limits = TIER_LIMITS[tier]

    assert (limits.read.refill_rate, limits.read.bucket_capacity) == read
    assert (limits.write.refill_rate, limits.write.bucket_capacity) == write


def test_a_new_bucket_is_full_and_refuses_what_it_cannot_cover() -> None:
    bucket = VenueBucket(BASIC_WRITE, T0)

    served = [bucket.allow(10, T0) for _ in range(11)]

    assert served == [True] * 10 + [False]


def test_refill_is_continuous_and_exact_to_the_nanosecond() -> None:
    bucket = VenueBucket(BASIC_WRITE, T0)
    assert bucket.allow(100, T0)

    # one token at 100 tokens/s takes exactly 10 ms
    assert not bucket.allow(1, T0 + 9_999_999)
    assert bucket.allow(1, T0 + 10_000_000)
    assert bucket.tokens(T0 + 10_000_000) == 0


def test_fractions_of_a_token_accumulate_across_requests() -> None:
    bucket = VenueBucket(BucketLimits(refill_rate=3, bucket_capacity=3), T0)
    assert bucket.allow(3, T0)

    # 3 tokens/s: a token every 333 333 333.33 ns; thirds are banked, never rounded away
    assert not bucket.allow(1, T0 + 333_333_333)
    assert bucket.allow(1, T0 + 333_333_334)
    assert bucket.allow(2, T0 + SECOND)


def test_a_refusal_costs_nothing() -> None:
    bucket = VenueBucket(BASIC_WRITE, T0)
    assert bucket.allow(95, T0)

    assert not bucket.allow(10, T0)
    assert bucket.allow(5, T0)


def test_the_level_never_exceeds_capacity() -> None:
    bucket = VenueBucket(BASIC_WRITE, T0)

    assert bucket.tokens(T0 + 3600 * SECOND) == 100
    assert bucket.allow(100, T0 + 3600 * SECOND)
    assert not bucket.allow(1, T0 + 3600 * SECOND)


def test_a_batch_is_served_whole_or_not_at_all() -> None:
    bucket = VenueBucket(BASIC_WRITE, T0)
    assert bucket.allow(10, T0)  # 90 left

    assert not bucket.allow(100, T0)  # 10 creates
    assert bucket.allow(90, T0)  # 9 creates


def test_a_batch_larger_than_capacity_is_never_served() -> None:
    bucket = VenueBucket(BASIC_WRITE, T0)

    assert not bucket.allow(110, T0 + 3600 * SECOND)


def test_a_clock_that_steps_back_refills_nothing() -> None:
    bucket = VenueBucket(BASIC_WRITE, T0)
    assert bucket.allow(100, T0)

    assert not bucket.allow(10, T0 - SECOND)
    assert bucket.allow(10, T0 + SECOND // 10)


def test_the_limiter_meters_accounts_and_buckets_apart_and_counts_429s() -> None:
    limiter = RateLimiter(TIER_LIMITS["basic"])
    limiter.bucket("me", "write", T0).empty(T0)

    mine = limiter.allow("me", "write", 10, T0)
    my_read = limiter.allow("me", "read", 10, T0)
    theirs = limiter.allow("other", "write", 10, T0)

    assert (mine, my_read, theirs) == (False, True, True)
    stats = limiter.stats
    assert (stats.refused_write, stats.refused_read, stats.refused) == (1, 0, 1)
    assert (stats.served_write, stats.served_read) == (1, 1)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_venue_never_uses_the_bots_rate_limiter() -> None:
    sim_dir = Path(kmm.sim.__file__).parent

    offenders = {
        path.name
        for path in sim_dir.glob("*.py")
        if any(name.startswith("kmm.execution") for name in _imports(path))
    }

    assert offenders == set()
