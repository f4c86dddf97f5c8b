from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.errors import ConfigError
from kmm.sim.engine import MarketStatus, MatchingEngine
from kmm.sim.faults import (
    Activate,
    CloseWs,
    Deactivate,
    DropWs,
    FailWrites,
    FaultPlan,
    FaultSpecError,
    Pause,
    RateLimitBurst,
    Resume,
    ScheduledFault,
    Stall,
    WriteFault,
    parse_duration_ns,
    parse_spec,
)
from kmm.sim.universe import build_universe, install

S = 1_000_000_000
T0 = 1_790_000_000 * S


def engine_with_markets() -> tuple[MatchingEngine, str]:
    engine = MatchingEngine()
    universe = build_universe(2, seed=1, scenario="calm", now_ns=T0)
    install(engine, universe)
    engine.drain_events()
    return engine, universe.markets[0].ticker


# Grammar


def test_the_example_spec_parses_into_the_faults_it_names() -> None:
    spec = (
        "30s:drop_ws,45s:close_ws,60s:stall=5s,90s:pause=10s,120s:deactivate=KXSIMA-26NOV23-T50,"
        "20s:write_5xx_accepted,25s:write_timeout_rejected,40s:429x5"
    )

    faults = parse_spec(spec)

    assert faults == [
        ScheduledFault(30 * S, DropWs(1, "orderbook_delta")),
        ScheduledFault(45 * S, CloseWs()),
        ScheduledFault(60 * S, Stall(5 * S)),
        ScheduledFault(90 * S, Pause(10 * S)),
        ScheduledFault(120 * S, Deactivate("KXSIMA-26NOV23-T50")),
        ScheduledFault(20 * S, FailWrites("5xx", accepted=True)),
        ScheduledFault(25 * S, FailWrites("timeout", accepted=False)),
        ScheduledFault(40 * S, RateLimitBurst(5)),
    ]


@pytest.mark.parametrize(
    ("token", "fault"),
    [
        ("1s:drop_wsx3=trade", DropWs(3, "trade")),
        ("1s:drop_ws=any", DropWs(1, None)),
        ("1s:pause", Pause(None)),
        ("1s:resume", Resume()),
        ("1s:activate=X-1", Activate("X-1")),
        ("1s:write_5xx_rejectedx4", FailWrites("5xx", accepted=False, count=4)),
        ("1s:write_timeout_acceptedx2", FailWrites("timeout", accepted=True, count=2)),
        ("1s:429", RateLimitBurst(1)),
    ],
)
def test_optional_counts_and_arguments_parse(token: str, fault: object) -> None:
    assert parse_spec(token) == [ScheduledFault(S, fault)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ns"),
    [("500ms", 500_000_000), ("1.5s", 1_500_000_000), ("2m", 120 * S), ("1h", 3600 * S)],
)
def test_durations_take_a_unit_and_convert_exactly(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


def test_blank_tokens_and_surrounding_spaces_are_ignored() -> None:
    assert parse_spec(" 1s:close_ws , ,2s:resume ") == [
        ScheduledFault(S, CloseWs()),
        ScheduledFault(2 * S, Resume()),
    ]
    assert parse_spec("") == []


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("close_ws", "expected OFFSET:ACTION"),
        ("30:close_ws", "expected a number and a unit"),
        ("30s:close", "unknown action 'close'"),
        ("30s:close_ws=1", "takes no argument"),
        ("30s:stall", "needs a duration"),
        ("30s:stall=forever", "expected a number and a unit"),
        ("30s:write_5xx_maybe", "unknown action"),
        ("30s:drop_ws=nochannel", "unknown websocket channel"),
        ("30s:429x0", "at least 1"),
        ("30s:pausex2", "takes no xN count"),
        ("30s:deactivate=", "needs a market ticker"),
        ("0.5ns:close_ws", "expected a number and a unit"),
    ],
)
def test_a_malformed_token_is_named_in_the_error(token: str, reason: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_spec(f"1s:close_ws,{token}")

    assert caught.value.token == token
    assert reason in caught.value.reason
    assert token in str(caught.value)


def test_a_spec_error_is_a_config_error_for_the_cli() -> None:
    with pytest.raises(ConfigError):
        FaultPlan.from_spec("1s:explode")


_faults = st.one_of(
    st.builds(DropWs, st.integers(1, 9), st.sampled_from(["orderbook_delta", "trade", None])),
    st.just(CloseWs()),
    st.builds(Stall, st.integers(0, 10**12)),
    st.builds(Pause, st.none() | st.integers(0, 10**12)),
    st.just(Resume()),
    st.builds(Deactivate, st.from_regex(r"[A-Z0-9.-]{1,20}", fullmatch=True)),
    st.builds(FailWrites, st.sampled_from(["5xx", "timeout"]), st.booleans(), st.integers(1, 9)),
    st.builds(RateLimitBurst, st.integers(1, 99)),
)


@settings(max_examples=200)
@given(st.lists(st.builds(ScheduledFault, st.integers(0, 10**13), _faults), max_size=6))
def test_every_schedule_renders_to_a_spec_that_parses_back_to_it(
    faults: list[ScheduledFault],
) -> None:
    spec = ",".join(item.token for item in faults)

    assert parse_spec(spec) == faults


# Schedule


def test_faults_fire_when_their_offset_from_the_start_is_reached() -> None:
    plan = FaultPlan.from_spec("10s:429x2,5s:close_ws", start_ns=T0)

    assert plan.apply_due(T0 + 4 * S) == []
    assert plan.apply_due(T0 + 5 * S) == [CloseWs()]
    assert plan.apply_due(T0 + 60 * S) == [RateLimitBurst(2)]
    assert plan.pending == ()
    assert plan.take_close_sockets()
    assert plan.pending_rate_limits == 2


def test_due_returns_faults_without_applying_them() -> None:
    plan = FaultPlan.from_spec("1s:close_ws", start_ns=T0)

    assert plan.due(T0 + S) == [CloseWs()]
    assert not plan.take_close_sockets()
    assert plan.due(T0 + 2 * S) == []


def test_faults_at_the_same_offset_fire_in_the_order_written() -> None:
    plan = FaultPlan.from_spec("1s:resume,1s:close_ws,1s:429", start_ns=T0)

    assert plan.due(T0 + S) == [Resume(), CloseWs(), RateLimitBurst(1)]


def test_the_start_time_may_be_set_after_the_plan_is_built() -> None:
    plan = FaultPlan.from_spec("1s:close_ws")
    plan.start_ns = T0

    assert plan.due(T0) == []
    assert plan.due(T0 + S) == [CloseWs()]


# Websocket faults


def test_drops_are_used_up_one_message_at_a_time_on_their_channel() -> None:
    plan = FaultPlan()
    plan.drop_ws_messages(2, "orderbook_delta")

    assert not plan.should_drop("trade")
    assert plan.should_drop("orderbook_delta")
    assert plan.should_drop("orderbook_delta")
    assert not plan.should_drop("orderbook_delta")
    assert plan.stats.dropped_messages == 2


def test_a_drop_on_any_channel_takes_the_next_message_whatever_its_channel() -> None:
    plan = FaultPlan()
    plan.drop_ws_messages(1, None)

    assert plan.pending_drops == 1
    assert plan.should_drop("fill")
    assert plan.pending_drops == 0


def test_an_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown websocket channel"):
        FaultPlan().drop_ws_messages(1, "orderbook")


def test_a_close_request_is_taken_once() -> None:
    plan = FaultPlan()
    plan.close_sockets()

    assert plan.take_close_sockets()
    assert not plan.take_close_sockets()
    assert plan.stats.socket_closes == 1


def test_a_stall_lasts_until_its_end_and_a_shorter_one_does_not_cut_it() -> None:
    plan = FaultPlan()
    plan.stall_feed(5.0, T0)
    plan.stall_feed(1.0, T0 + S)

    assert plan.stalled(T0 + 4 * S)
    assert not plan.stalled(T0 + 5 * S)
    assert plan.stall_until_ns == T0 + 5 * S


# REST faults


def test_write_faults_are_served_in_order_then_writes_answer_normally() -> None:
    plan = FaultPlan()
    plan.fail_next_writes(1, "5xx", accepted=True)
    plan.fail_next_writes(2, "timeout", accepted=False)

    served = [plan.take_write_fault() for _ in range(4)]

    assert served == [
        WriteFault("5xx", True),
        WriteFault("timeout", False),
        WriteFault("timeout", False),
        None,
    ]
    assert plan.stats.write_faults == 3


def test_an_unknown_write_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        FaultPlan().fail_next_writes(1, "4xx", accepted=False)


def test_a_rate_limit_burst_answers_exactly_n_requests() -> None:
    plan = FaultPlan()
    plan.rate_limit_burst(3)

    answers = [plan.take_rate_limit() for _ in range(4)]

    assert answers == [True, True, True, False]


def test_clear_forgets_pending_counted_faults() -> None:
    plan = FaultPlan()
    plan.rate_limit_burst(3)
    plan.fail_next_writes(1, "5xx", accepted=False)
    plan.drop_ws_messages(2)
    plan.close_sockets()
    plan.stall_feed(9.0, T0)

    plan.clear()

    assert not plan.take_rate_limit()
    assert plan.take_write_fault() is None
    assert not plan.should_drop("orderbook_delta")
    assert not plan.take_close_sockets()
    assert not plan.stalled(T0)


# Venue faults


def test_a_timed_pause_stops_trading_on_the_engine_and_ends_at_its_time() -> None:
    engine, _ = engine_with_markets()
    plan = FaultPlan.from_spec("1s:pause=10s", start_ns=T0, controls=engine)

    plan.apply_due(T0 + S)
    paused = (plan.trading_paused(T0 + 2 * S), engine.trading_active)
    fired = plan.apply_due(T0 + 11 * S)

    assert paused == (True, False)
    assert fired == [Resume()]
    assert not plan.trading_paused(T0 + 11 * S)
    assert engine.trading_active


def test_an_open_ended_pause_lasts_until_resumed() -> None:
    engine, _ = engine_with_markets()
    plan = FaultPlan(controls=engine)

    plan.pause_trading(None, T0)
    plan.apply_due(T0 + 3600 * S)
    still_paused = plan.trading_paused(T0 + 3600 * S)
    plan.resume_trading(T0 + 3601 * S)

    assert still_paused
    assert plan.pause_until_ns is None
    assert engine.trading_active


def test_a_longer_pause_extends_a_shorter_one() -> None:
    plan = FaultPlan()
    plan.pause_trading(10.0, T0)
    plan.pause_trading(30.0, T0 + S)
    plan.pause_trading(1.0, T0 + 2 * S)

    assert plan.pause_until_ns == T0 + 31 * S
    assert plan.stats.pauses == 1


def test_deactivate_and_activate_change_the_market_status() -> None:
    engine, ticker = engine_with_markets()
    plan = FaultPlan.from_spec(
        f"1s:deactivate={ticker},2s:activate={ticker}", start_ns=T0, controls=engine
    )

    plan.apply_due(T0 + S)
    inactive = engine.markets[ticker].status
    plan.apply_due(T0 + 2 * S)

    assert inactive is MarketStatus.INACTIVE
    assert engine.markets[ticker].status is MarketStatus.ACTIVE


def test_a_scheduled_fault_the_venue_refuses_is_recorded_and_skipped() -> None:
    engine, _ = engine_with_markets()
    plan = FaultPlan.from_spec("1s:deactivate=NO-SUCH,1s:close_ws", start_ns=T0, controls=engine)

    fired = plan.apply_due(T0 + S)

    assert fired == [Deactivate("NO-SUCH"), CloseWs()]
    assert [fault for fault, _ in plan.errors] == [Deactivate("NO-SUCH")]
    assert plan.take_close_sockets()
