from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.config import RiskConfig
from kmm.risk import EventKind, HaltState, KillSwitch, Trigger
from kmm.risk.killswitch import NS_PER_DAY

USD = 1_000_000
S = 1_000_000_000
DAY0 = 20_000 * NS_PER_DAY  # 2024-10-04T00:00:00Z
T0 = DAY0 + 10 * 3600 * S


def _switch(max_unknown: int = 2) -> KillSwitch:
    return KillSwitch(
        max_daily_loss=100 * USD,
        max_drawdown=150 * USD,
        max_unknown_orders=max_unknown,
        unknown_window_ns=60 * S,
        stale_feed_ns=120 * S,
    )


def _halted(switch: KillSwitch) -> KillSwitch:
    switch.trip("operator", T0)
    switch.confirm_flat(T0 + S)
    return switch


# Daily loss and drawdown


def test_a_new_switch_is_running_and_allows_quoting() -> None:
    switch = _switch()

    assert switch.state is HaltState.RUNNING
    assert switch.quoting_allowed
    assert (switch.trigger, switch.reason, switch.tripped_ns) == (None, None, None)


def test_the_first_reading_of_a_day_is_its_baseline() -> None:
    switch = _switch()

    event = switch.on_pnl(-500 * USD, T0)

    assert event is None
    assert switch.day_pnl == 0
    assert switch.quoting_allowed


def test_a_daily_loss_reaching_the_limit_trips_the_switch_naming_the_numbers() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)

    event = switch.on_pnl(-100 * USD, T0 + S)

    assert event is not None
    assert event.kind is EventKind.TRIP
    assert event.trigger is Trigger.DAILY_LOSS
    assert switch.state is HaltState.HALTING
    assert not switch.quoting_allowed
    assert switch.tripped_ns == T0 + S
    assert event.reason == "daily loss: today's P&L -$100.00 <= -$100.00 (max_daily_loss)"


def test_a_daily_loss_just_short_of_the_limit_does_not_trip() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)

    event = switch.on_pnl(-100 * USD + 1, T0 + S)

    assert event is None
    assert switch.quoting_allowed


def test_a_fall_from_the_days_peak_trips_even_while_the_day_is_in_profit() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.on_pnl(200 * USD, T0 + S)

    event = switch.on_pnl(50 * USD, T0 + 2 * S)

    assert event is not None
    assert event.trigger is Trigger.DRAWDOWN
    assert event.reason == (
        "drawdown: today's P&L $50.00 is $150.00 below today's peak $200.00 (max_drawdown $150.00)"
    )


def test_a_fall_just_short_of_the_drawdown_limit_does_not_trip() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.on_pnl(200 * USD, T0 + S)

    event = switch.on_pnl(50 * USD + 1, T0 + 2 * S)

    assert event is None
    assert switch.day_peak == 200 * USD


def test_drawdown_is_measured_from_todays_peak_not_from_an_earlier_days_peak() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.on_pnl(300 * USD, T0 + S)  # yesterday's peak

    first = switch.on_pnl(290 * USD, DAY0 + NS_PER_DAY + S)  # new day: baseline 290
    second = switch.on_pnl(200 * USD, DAY0 + NS_PER_DAY + 2 * S)  # -90 today, 100 below 300

    assert (first, second) == (None, None)
    assert switch.day_pnl == -90 * USD
    assert switch.day_peak == 0


def test_a_new_utc_day_resets_the_baseline_and_peak_and_is_logged() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.on_pnl(40 * USD, T0 + S)
    switch.take_events()

    switch.on_pnl(-30 * USD, DAY0 + NS_PER_DAY)

    (event,) = switch.take_events()
    assert event.kind is EventKind.DAY_START
    assert event.reason == (
        "UTC day 2024-10-05 starts at total P&L -$30.00; 2024-10-04 ended at $40.00 (peak $40.00)"
    )
    assert (switch.day_pnl, switch.day_peak) == (0, 0)


def test_a_day_that_only_loses_measures_its_drawdown_from_zero() -> None:
    switch = KillSwitch(max_daily_loss=500 * USD, max_drawdown=150 * USD, max_unknown_orders=2)
    switch.on_pnl(0, T0)

    event = switch.on_pnl(-150 * USD, T0 + S)

    assert event is not None
    assert event.trigger is Trigger.DRAWDOWN


@settings(max_examples=200, deadline=None)
@given(
    readings=st.lists(
        st.tuples(st.integers(0, 60 * S), st.integers(-200 * USD, 200 * USD)),
        min_size=1,
        max_size=30,
    )
)
def test_the_switch_trips_at_the_first_reading_beyond_a_loss_or_drawdown_limit(
    readings: list[tuple[int, int]],
) -> None:
    switch = _switch()
    now, baseline = T0, readings[0][1]
    peak, expected = 0, None
    for i, (step, total) in enumerate(readings):
        now += step  # stays within the day
        event = switch.on_pnl(total, now)

        pnl = total - baseline
        peak = max(peak, pnl)
        if expected is None and (pnl <= -100 * USD or peak - pnl >= 150 * USD):
            expected = i
            assert event is not None
        else:
            assert event is None
        assert switch.day_pnl == pnl
        assert switch.day_peak == peak
    assert switch.quoting_allowed == (expected is None)


# Restore after a restart


def test_a_restart_does_not_forget_todays_loss() -> None:
    switch = _switch()
    switch.restore(day_pnl=-90 * USD, day_peak=0, total_pnl=0, now_ns=T0)

    event = switch.on_pnl(-10 * USD, T0 + S)

    assert event is not None
    assert event.trigger is Trigger.DAILY_LOSS
    assert switch.day_pnl == -100 * USD


def test_a_restart_keeps_todays_peak_for_the_drawdown() -> None:
    switch = _switch()
    switch.restore(day_pnl=20 * USD, day_peak=160 * USD, total_pnl=7 * USD, now_ns=T0)

    event = switch.on_pnl(17 * USD, T0 + S)  # day P&L 30, 130 below the peak
    trip = switch.on_pnl(17 * USD - 20 * USD, T0 + 2 * S)  # day P&L 10, 150 below

    assert event is None
    assert trip is not None
    assert trip.trigger is Trigger.DRAWDOWN


def test_restoring_values_already_beyond_a_limit_trips_at_once() -> None:
    switch = _switch()

    event = switch.restore(day_pnl=-120 * USD, day_peak=0, total_pnl=0, now_ns=T0)

    assert event is not None
    assert event.trigger is Trigger.DAILY_LOSS
    kinds = [e.kind for e in switch.take_events()]
    assert kinds == [EventKind.RESTORE, EventKind.TRIP]


def test_a_restored_day_is_replaced_when_a_new_day_begins() -> None:
    switch = _switch()
    switch.restore(day_pnl=-90 * USD, day_peak=10 * USD, total_pnl=0, now_ns=T0)

    event = switch.on_pnl(-20 * USD, DAY0 + NS_PER_DAY)

    assert event is None
    assert (switch.day_pnl, switch.day_peak) == (0, 0)


def test_restoring_a_peak_below_the_days_pnl_is_refused() -> None:
    switch = _switch()

    with pytest.raises(ValueError, match=r"day_peak \$10.00 is below day_pnl \$20.00"):
        switch.restore(day_pnl=20 * USD, day_peak=10 * USD, total_pnl=0, now_ns=T0)


# Unknown outcomes and a silent feed


def test_more_unknown_outcomes_than_tolerated_within_the_window_trip_the_switch() -> None:
    switch = _switch(max_unknown=2)
    switch.on_unknown_order(T0)
    switch.on_unknown_order(T0 + 10 * S)

    event = switch.on_unknown_order(T0 + 20 * S)

    assert event is not None
    assert event.trigger is Trigger.UNKNOWN_ORDERS
    assert event.reason == "3 order outcomes unknown within 60.0 s (max_unknown_orders 2)"


def test_as_many_unknown_outcomes_as_tolerated_do_not_trip() -> None:
    switch = _switch(max_unknown=2)
    switch.on_unknown_order(T0)

    event = switch.on_unknown_order(T0 + 10 * S)

    assert event is None
    assert switch.quoting_allowed


def test_unknown_outcomes_older_than_the_window_are_forgotten() -> None:
    switch = _switch(max_unknown=2)
    switch.on_unknown_order(T0)
    switch.on_unknown_order(T0 + 10 * S)

    event = switch.on_unknown_order(T0 + 60 * S)  # the first is exactly 60 s old

    assert event is None


def test_zero_tolerated_unknown_outcomes_trip_on_the_first() -> None:
    switch = _switch(max_unknown=0)

    event = switch.on_unknown_order(T0)

    assert event is not None
    assert event.trigger is Trigger.UNKNOWN_ORDERS


def test_a_feed_silent_for_the_limit_trips_the_switch() -> None:
    switch = _switch()

    event = switch.check_feed(T0, T0 + 120 * S)

    assert event is not None
    assert event.trigger is Trigger.STALE_FEED
    assert event.reason == "market data silent for 120.0 s (limit 120.0 s)"


def test_a_feed_silent_for_less_than_the_limit_does_not_trip() -> None:
    switch = _switch()

    assert switch.check_feed(T0, T0 + 120 * S - 1) is None


# Manual trips and the lifecycle


def test_a_manual_trip_halts_quoting_with_its_reason() -> None:
    switch = _switch()

    event = switch.trip("kill file KILL exists", T0)

    assert event is not None
    assert event.trigger is Trigger.MANUAL
    assert (switch.state, switch.reason) == (HaltState.HALTING, "kill file KILL exists")
    assert str(event) == "kill switch trip (halting): kill file KILL exists"


def test_a_second_trip_keeps_the_first_reason() -> None:
    switch = _switch()
    switch.trip("SIGUSR1", T0)

    event = switch.trip("drift", T0 + S, Trigger.DRIFT)

    assert event is None
    assert (switch.trigger, switch.reason, switch.tripped_ns) == (Trigger.MANUAL, "SIGUSR1", T0)


def test_limits_do_not_trip_again_while_halting() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.trip("operator", T0)

    assert switch.on_pnl(-500 * USD, T0 + S) is None
    assert switch.on_unknown_order(T0 + S) is None
    assert switch.check_feed(T0, T0 + 500 * S) is None
    assert switch.reason == "operator"


def test_confirming_flat_moves_halting_to_halted() -> None:
    switch = _switch()
    switch.trip("operator", T0)

    event = switch.confirm_flat(T0 + S)

    assert event is not None
    assert event.kind is EventKind.FLAT
    assert switch.state is HaltState.HALTED
    assert not switch.quoting_allowed


def test_confirming_flat_while_running_does_nothing() -> None:
    switch = _switch()

    assert switch.confirm_flat(T0) is None
    assert switch.state is HaltState.RUNNING


def test_a_halted_switch_stays_halted_through_a_recovery_and_a_new_day() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    _halted(switch)

    switch.on_pnl(1_000 * USD, T0 + 2 * S)
    switch.on_pnl(1_000 * USD, DAY0 + NS_PER_DAY)

    assert switch.state is HaltState.HALTED


def test_a_halting_switch_cannot_be_resumed_before_it_is_flat() -> None:
    switch = _switch()
    switch.trip("operator", T0)

    assert switch.resume(T0 + S) is None
    assert switch.state is HaltState.HALTING


def test_resuming_a_halted_switch_runs_again_and_clears_the_trip() -> None:
    switch = _halted(_switch())

    event = switch.resume(T0 + 2 * S)

    assert event is not None
    assert event.kind is EventKind.RESUME
    assert event.reason == "resumed after manual: operator"
    assert switch.quoting_allowed
    assert (switch.trigger, switch.reason, switch.tripped_ns) == (None, None, None)


def test_resuming_while_the_daily_loss_still_holds_trips_again_at_the_next_reading() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.on_pnl(-100 * USD, T0 + S)
    switch.confirm_flat(T0 + 2 * S)
    switch.resume(T0 + 3 * S)

    event = switch.on_pnl(-100 * USD, T0 + 4 * S)

    assert event is not None
    assert event.trigger is Trigger.DAILY_LOSS


def test_resuming_with_a_rebased_peak_measures_drawdown_from_now() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.on_pnl(200 * USD, T0 + S)
    switch.on_pnl(50 * USD, T0 + 2 * S)  # drawdown trip
    switch.confirm_flat(T0 + 3 * S)
    switch.resume(T0 + 4 * S, rebase_peak=True)

    event = switch.on_pnl(-49 * USD, T0 + 5 * S)  # 99 below the rebased peak of 50

    assert event is None
    assert switch.day_peak == 50 * USD


def test_resuming_clears_the_window_of_unknown_outcomes() -> None:
    switch = _switch(max_unknown=2)
    for i in range(3):
        switch.on_unknown_order(T0 + i)
    switch.confirm_flat(T0 + S)
    switch.resume(T0 + 2 * S)

    event = switch.on_unknown_order(T0 + 3 * S)

    assert event is None


def test_every_event_is_handed_over_once_in_order() -> None:
    switch = _switch()
    switch.on_pnl(0, T0)
    switch.trip("operator", T0 + 1)
    switch.confirm_flat(T0 + 2)
    switch.resume(T0 + 3)

    events = switch.take_events()

    assert [(e.ts_ns, e.kind, e.state) for e in events] == [
        (T0, EventKind.DAY_START, HaltState.RUNNING),
        (T0 + 1, EventKind.TRIP, HaltState.HALTING),
        (T0 + 2, EventKind.FLAT, HaltState.HALTED),
        (T0 + 3, EventKind.RESUME, HaltState.RUNNING),
    ]
    assert switch.take_events() == []


# Construction


def test_from_config_takes_the_risk_limits_and_a_stale_feed_of_four_stale_books() -> None:
    risk = RiskConfig(
        max_daily_loss_dollars=Decimal(25), max_drawdown_dollars=Decimal(40), stale_book_s=10
    )

    switch = KillSwitch.from_config(risk)

    assert (switch.max_daily_loss, switch.max_drawdown) == (25 * USD, 40 * USD)
    assert switch.max_unknown_orders == risk.max_unknown_orders
    assert switch.stale_feed_ns == 40 * S
    assert switch.unknown_window_ns == 60 * S


def test_from_config_accepts_an_explicit_stale_feed_and_window() -> None:
    switch = KillSwitch.from_config(RiskConfig(), unknown_window_s=5.0, stale_feed_s=300.0)

    assert (switch.unknown_window_ns, switch.stale_feed_ns) == (5 * S, 300 * S)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_daily_loss", 0),
        ("max_drawdown", -1),
        ("max_unknown_orders", -1),
        ("unknown_window_ns", 0),
        ("stale_feed_ns", 0),
    ],
)
def test_a_limit_out_of_range_is_refused_naming_it(field: str, value: int) -> None:
    kwargs = {
        "max_daily_loss": USD,
        "max_drawdown": USD,
        "max_unknown_orders": 1,
        "unknown_window_ns": S,
        "stale_feed_ns": S,
        field: value,
    }

    with pytest.raises(ValueError, match=field):
        KillSwitch(**kwargs)
