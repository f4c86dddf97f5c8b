from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.errors import ConfigError
from kmm.execution.token_bucket import (
    Backoff,
    RateBuckets,
    TokenBucket,
    WriteScheduler,
    amend_cost,
    cancel_cost,
    create_cost,
    split_by_cost,
)
from kmm.sim._limits import BucketLimits, VenueBucket

SECOND = 1_000_000_000
T0 = 1_000 * SECOND


@dataclass(frozen=True)
class Req:
    name: str
    cost: int


def test_a_new_bucket_starts_full() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)

    assert bucket.available(T0) == 100


def test_taking_more_than_is_left_fails_and_changes_nothing() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0, tokens=15)

    assert bucket.try_take(10, T0)
    assert not bucket.try_take(10, T0)

    assert bucket.available(T0) == 5


def test_refill_keeps_fractions_of_a_token_exactly() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=3, now_ns=T0, tokens=0)

    # One token takes 1/3 s = 333 333 333.33… ns
    assert bucket.available(T0 + 333_333_333) == 0
    assert bucket.available(T0 + 333_333_334) == 1
    assert bucket.available(T0 + SECOND) == 3


def test_refill_stops_at_capacity() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0, tokens=0)

    assert bucket.available(T0 + 10 * SECOND) == 100


def test_a_clock_that_steps_back_neither_refills_nor_corrupts_the_bucket() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0, tokens=50)

    assert bucket.available(T0 - SECOND) == 50
    assert bucket.available(T0 + SECOND // 10) == 60


def test_wait_is_zero_when_the_cost_is_affordable_now() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)

    assert bucket.wait_ns(10, T0) == 0


def test_wait_is_the_exact_time_until_the_cost_is_affordable() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=3, now_ns=T0, tokens=0)

    wait = bucket.wait_ns(1, T0)

    assert wait == 333_333_334
    assert not bucket.try_take(1, T0 + wait - 1)
    assert bucket.try_take(1, T0 + wait)


def test_a_cost_above_capacity_is_refused_naming_both() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)

    with pytest.raises(ValueError, match=r"250.*100"):
        bucket.wait_ns(250, T0)
    with pytest.raises(ValueError, match=r"250.*100"):
        bucket.try_take(250, T0)


def test_a_negative_cost_is_refused() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)

    with pytest.raises(ValueError, match="-2"):
        bucket.try_take(-2, T0)


@pytest.mark.parametrize(("capacity", "rate"), [(0, 10), (10, 0), (-1, 10)])
def test_a_bucket_needs_positive_capacity_and_rate(capacity: int, rate: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(capacity=capacity, refill_per_s=rate, now_ns=T0)


def test_draining_models_a_429_and_refill_restarts_from_empty() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)

    bucket.drain(T0)

    assert bucket.available(T0) == 0
    assert bucket.wait_ns(10, T0) == SECOND // 10


@settings(max_examples=100, deadline=None)
@given(
    rate=st.integers(1, 10_000),
    steps=st.lists(st.integers(0, 3 * SECOND), min_size=1, max_size=30),
)
def test_many_small_refills_add_up_to_exactly_one_big_one(rate: int, steps: list[int]) -> None:
    stepped = TokenBucket(capacity=10**9, refill_per_s=rate, now_ns=T0, tokens=0)
    now = T0
    for step in steps:
        now += step
        stepped.available(now)
    single = TokenBucket(capacity=10**9, refill_per_s=rate, now_ns=T0, tokens=0)

    assert stepped.wait_ns(1, now) == single.wait_ns(1, now)
    assert stepped.available(now) == single.available(now) == rate * (now - T0) // SECOND


def test_tiers_come_from_the_constants() -> None:
    buckets = RateBuckets.from_tier("basic", T0)

    assert (buckets.read.capacity, buckets.read.refill_per_s) == (400, 200)
    assert (buckets.write.capacity, buckets.write.refill_per_s) == (100, 100)


def test_an_unknown_tier_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="'gold'"):
        RateBuckets.from_tier("gold", T0)


def test_limits_from_the_account_endpoint_build_both_buckets() -> None:
    buckets = RateBuckets.from_limits(1000, 1000, 1000, 2000, T0)

    assert buckets.write.available(T0) == 2000
    assert buckets.read.available(T0) == 1000


def test_batches_are_billed_per_item() -> None:
    assert create_cost(25) == 250
    assert cancel_cost(25) == 50
    assert amend_cost() == 10
    assert create_cost() == 10
    assert cancel_cost() == 2


def test_cancels_are_admitted_before_places_submitted_earlier() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0))
    scheduler.submit_place(Req("place", 10), deadline_ns=T0 + SECOND)
    scheduler.submit_cancel(Req("cancel", 2))

    admitted = scheduler.admit(T0)

    assert [r.name for r in admitted.send] == ["cancel", "place"]
    assert admitted.dropped == []


def test_a_place_never_jumps_a_waiting_cancel() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0, tokens=15))
    scheduler.submit_cancel(Req("batch-cancel", 20))
    scheduler.submit_place(Req("place", 10), deadline_ns=T0 + SECOND)

    admitted = scheduler.admit(T0)

    assert admitted.send == []
    assert scheduler.waiting_cancels == 1
    assert scheduler.waiting_places == 1


def test_places_go_in_fifo_order_and_a_cheap_one_waits_behind_a_dear_one() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0, tokens=15))
    scheduler.submit_place(Req("first", 10), deadline_ns=T0 + SECOND)
    scheduler.submit_place(Req("batch", 20), deadline_ns=T0 + SECOND)
    scheduler.submit_place(Req("cheap", 2), deadline_ns=T0 + SECOND)

    admitted = scheduler.admit(T0)

    assert [r.name for r in admitted.send] == ["first"]
    assert scheduler.waiting_places == 2


def test_a_place_past_its_deadline_is_dropped_not_sent_late() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0, tokens=0))
    scheduler.submit_place(Req("stale", 10), deadline_ns=T0 + 50_000_000)
    scheduler.submit_place(Req("fresh", 10), deadline_ns=T0 + SECOND)

    admitted = scheduler.admit(T0 + 100_000_000)

    assert [r.name for r in admitted.dropped] == ["stale"]
    assert [r.name for r in admitted.send] == ["fresh"]


def test_an_expired_place_behind_a_blocked_one_is_dropped_too() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0, tokens=0))
    scheduler.submit_place(Req("head", 10), deadline_ns=T0 + SECOND)
    scheduler.submit_place(Req("stale", 10), deadline_ns=T0)

    admitted = scheduler.admit(T0 + 1)

    assert [r.name for r in admitted.dropped] == ["stale"]
    assert admitted.send == []
    assert scheduler.waiting_places == 1


def test_a_place_can_be_sent_exactly_at_its_deadline() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0))
    scheduler.submit_place(Req("place", 10), deadline_ns=T0)

    admitted = scheduler.admit(T0)

    assert [r.name for r in admitted.send] == ["place"]


def test_a_request_the_bucket_can_never_pay_is_refused_at_submission() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0))

    with pytest.raises(ValueError, match=r"120.*100"):
        scheduler.submit_cancel(Req("huge", 120))


def test_next_wake_is_none_when_nothing_waits() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0))

    assert scheduler.next_wake_ns(T0) is None


def test_next_wake_is_when_the_head_becomes_affordable() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0, tokens=0))
    scheduler.submit_cancel(Req("cancel", 2))
    scheduler.submit_place(Req("place", 10), deadline_ns=T0 + SECOND)

    wake = scheduler.next_wake_ns(T0)

    assert wake == T0 + 20_000_000
    assert [r.name for r in scheduler.admit(wake).send] == ["cancel"]


def test_next_wake_is_just_after_a_deadline_that_comes_first() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0, tokens=0))
    scheduler.submit_place(Req("place", 10), deadline_ns=T0 + 1_000)

    wake = scheduler.next_wake_ns(T0)

    assert wake == T0 + 1_001
    assert [r.name for r in scheduler.admit(wake).dropped] == ["place"]


def test_withdrawn_places_are_never_sent() -> None:
    scheduler: WriteScheduler[Req] = WriteScheduler(TokenBucket(100, 100, T0))
    scheduler.submit_place(Req("old-bid", 10), deadline_ns=T0 + SECOND)
    scheduler.submit_place(Req("ask", 10), deadline_ns=T0 + SECOND)

    removed = scheduler.withdraw_places(lambda r: r.name == "old-bid")

    assert [r.name for r in removed] == ["old-bid"]
    assert [r.name for r in scheduler.admit(T0).send] == ["ask"]


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("cancel"), st.integers(1, 40), st.just(0)),
        st.tuples(st.just("place"), st.integers(1, 40), st.integers(0, 200_000_000)),
        st.tuples(st.just("admit"), st.just(0), st.integers(0, 100_000_000)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ops=_OPS)
def test_the_scheduler_never_overspends_reorders_or_sends_late(
    ops: list[tuple[str, int, int]],
) -> None:
    bucket = TokenBucket(capacity=50, refill_per_s=100, now_ns=T0)
    scheduler: WriteScheduler[Req] = WriteScheduler(bucket)
    now, spent, deadlines = T0, 0, {}
    submitted: dict[str, list[str]] = {"cancel": [], "place": []}
    sent: dict[str, list[str]] = {"cancel": [], "place": []}
    for i, (op, cost, arg) in enumerate(ops):
        name = f"{op}{i}"
        if op == "cancel":
            scheduler.submit_cancel(Req(name, cost))
            submitted[op].append(name)
        elif op == "place":
            deadlines[name] = now + arg
            scheduler.submit_place(Req(name, cost), deadlines[name])
            submitted[op].append(name)
        else:
            now += arg
            admitted = scheduler.admit(now)
            for req in admitted.send:
                kind = "cancel" if req.name.startswith("cancel") else "place"
                sent[kind].append(req.name)
                spent += req.cost
                assert kind == "cancel" or deadlines[req.name] >= now
            kinds = [r.name.startswith("cancel") for r in admitted.send]
            assert kinds == sorted(kinds, reverse=True)

    assert spent <= 50 + 100 * (now - T0) // SECOND
    assert sent["cancel"] == submitted["cancel"][: len(sent["cancel"])]
    order = {name: i for i, name in enumerate(submitted["place"])}
    assert [order[n] for n in sent["place"]] == sorted(order[n] for n in sent["place"])


# ----------------------------------------------------------------- against the venue's limiter
#
# The local exchange's limiter (kmm.sim._limits) is written from Kalshi's documentation, not from
# this module. Whatever our bucket admits, the venue must serve, under any schedule: requests
# arrive some time after we send them (delays vary, so arrival order may differ from send
# order) and are answered some time after they arrive.


def test_a_reservation_is_booked_when_its_answer_arrives() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)
    assert bucket.try_take(100, T0)
    assert (bucket.available(T0 + SECOND), bucket.in_flight) == (0, 100)

    bucket.settle(100, T0 + SECOND)  # the venue may have charged it just before answering

    assert bucket.available(T0 + SECOND) == 0
    assert bucket.available(T0 + SECOND + SECOND // 10) == 10


def test_a_late_burst_then_a_prompt_request_is_never_refused() -> None:
    # Ten creates sent at T0 reach the venue 5 ms late and are answered at once; at 100/s the
    # eleventh is affordable 100 ms after the burst *arrived*, not 100 ms after it was sent
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)
    venue = VenueBucket(BucketLimits(100, 100), T0)
    late = T0 + 5_000_000
    assert all(bucket.try_take(10, T0) for _ in range(10))
    assert all(venue.allow(10, late) for _ in range(10))
    for _ in range(10):
        bucket.settle(10, late)

    assert not bucket.try_take(10, T0 + SECOND // 10)
    assert bucket.wait_ns(10, T0 + SECOND // 10) == 5_000_000
    assert not venue.allow(10, T0 + SECOND // 10)  # what sending it then would have drawn
    assert bucket.try_take(10, late + SECOND // 10)
    assert venue.allow(10, late + SECOND // 10)


def test_a_release_returns_the_reservation_of_a_request_never_sent() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)
    assert bucket.try_take(30, T0)

    bucket.release(30)

    assert (bucket.available(T0), bucket.in_flight) == (100, 0)


def test_settling_more_than_is_in_flight_is_a_bug_named() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)
    assert bucket.try_take(10, T0)

    with pytest.raises(ValueError, match="cannot settle 12 tokens"):
        bucket.settle(12, T0)


def test_only_an_answer_can_free_what_is_held_in_flight() -> None:
    bucket = TokenBucket(capacity=100, refill_per_s=100, now_ns=T0)
    scheduler: WriteScheduler[Req] = WriteScheduler(bucket)
    assert bucket.try_take(95, T0)
    scheduler.submit_cancel(Req("cancel", 10))

    assert bucket.wait_ns(10, T0 + 10 * SECOND) is None
    assert scheduler.next_wake_ns(T0 + 10 * SECOND) is None
    bucket.settle(95, T0 + 10 * SECOND)
    assert scheduler.next_wake_ns(T0 + 10 * SECOND) == T0 + 10 * SECOND + SECOND // 20


def test_batches_are_split_to_fit_the_capacity() -> None:
    batches = split_by_cost(list(range(120)), cancel_cost(), 100)

    assert [len(b) for b in batches] == [50, 50, 20]
    assert [i for b in batches for i in b] == list(range(120))
    assert [len(b) for b in split_by_cost(list(range(16)), create_cost(), 100)] == [10, 6]
    with pytest.raises(ValueError, match="cannot fit"):
        split_by_cost([1], 200, 100)


_SCHEDULE = st.lists(
    st.tuples(
        st.integers(0, 60_000_000),  # ns until the client next tries to send
        st.sampled_from([2, 10, 20, 50, 100]),  # cost: cancel, create, batches
        st.integers(0, 40_000_000),  # send → arrival
        st.integers(0, 20_000_000),  # arrival → answer
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    limits=st.sampled_from([(100, 100), (200, 400), (1000, 2000), (7, 20)]),
    venue_head_start=st.integers(0, 3 * SECOND),
    schedule=_SCHEDULE,
)
def test_the_venue_serves_everything_our_bucket_admits(
    limits: tuple[int, int], venue_head_start: int, schedule: list[tuple[int, int, int, int]]
) -> None:
    rate, capacity = limits
    bucket = TokenBucket(capacity=capacity, refill_per_s=rate, now_ns=T0)
    answers: list[tuple[int, int]] = []  # (answer time, cost), answered in time order
    arrivals: list[tuple[int, int, int]] = []  # (arrival time, send order, cost)
    now = T0
    for gap, cost, to_arrival, to_answer in schedule:
        now += gap
        answers.sort()
        while answers and answers[0][0] <= now:
            at, paid = answers.pop(0)
            bucket.settle(paid, at)
        if cost <= capacity and bucket.try_take(cost, now):
            arrivals.append((now + to_arrival, len(arrivals), cost))
            answers.append((now + to_arrival + to_answer, cost))
    venue = VenueBucket(BucketLimits(rate, capacity), T0 - venue_head_start)

    refused = [a for a in sorted(arrivals) if not venue.allow(a[2], a[0])]

    assert refused == []


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.01, factor=2.0, max_s=0.05, jitter=0.5, random_fn=lambda: 0.0)

    delays = [backoff.next_delay_s() for _ in range(5)]

    assert delays == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05])
    assert backoff.attempt == 5


def test_backoff_jitter_takes_at_most_its_fraction_off() -> None:
    backoff = Backoff(base_s=0.1, jitter=0.5, random_fn=lambda: 0.999)

    assert backoff.next_delay_s() == pytest.approx(0.1 * (1 - 0.5 * 0.999))


def test_backoff_starts_over_after_a_reset() -> None:
    backoff = Backoff(base_s=0.01, random_fn=lambda: 0.0)
    backoff.next_delay_s()
    backoff.next_delay_s()

    backoff.reset()

    assert backoff.next_delay_s() == pytest.approx(0.01)


def test_backoff_survives_a_very_long_failure_streak() -> None:
    backoff = Backoff(base_s=0.01, max_s=2.0, random_fn=lambda: 0.0)

    delays = [backoff.next_delay_s() for _ in range(2_000)]

    assert delays[-1] == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"base_s": 0.0}, {"factor": 0.5}, {"max_s": 0.001}, {"jitter": 1.5}],
)
def test_backoff_refuses_parameters_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]
