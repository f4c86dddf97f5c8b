"""The trading core: frames, fills, outcomes and ticks in with the time; actions and records
out. No socket, no event loop, no clock."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import orjson

from kmm.app import build_core
from kmm.book.grid import PriceGrid
from kmm.config import KmmConfig
from kmm.core.actions import Action, GoFlat, Print, ReadFills, Resync, Say
from kmm.core.planner import ExecEvent, ExecSettings, StartCancels, StartCreate
from kmm.core.trading import TradingCore
from kmm.execution.token_bucket import Backoff, TokenBucket, WriteScheduler
from kmm.kalshi.rest import CreateAck, VenueOrder
from kmm.pipeline import MarketSpec
from kmm.strategy.exit import ExitStyle
from kmm.types import BookSide, Fill, Money, Qty

DATA = Path(__file__).parent.parent / "data" / "ws"
T0 = 1_790_000_000_000_000_000
MS = 1_000_000
TICKER = "FED-23DEC-T3.00"
A = TypeVar("A")


class Sink:
    """Records as lists of tuples, by kind."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}

    def _add(self, kind: str, *row: Any) -> None:
        self.rows.setdefault(kind, []).append(row)

    def tape(self, ts_ns: int, ticker: str, event: str, *row: Any, **more: Any) -> None:
        self._add("tape", ts_ns, ticker, event, *row, more)

    def order(self, ts_ns: int, ticker: str, *row: Any) -> None:
        self._add("order", ts_ns, ticker, *row)

    def fill(self, fill: Fill, position_after: Qty, source: str = "stream") -> None:
        self._add("fill", fill.trade_id, position_after, source)

    def position(
        self, ts_ns: int, ticker: str, position: Qty, realized: Money, fees: Money
    ) -> None:
        self._add("position", ticker, position)

    def daily_pnl(self, day: str, pnl: Money, peak: Money, ts_ns: int) -> None:
        self._add("daily", day, pnl, peak)

    def volatility_event(self, ts_ns: int, event: Any, session: int | None, skipped: str) -> None:
        self._add("vol_event", event.ticker, session, skipped)

    def volatility_session(self, session: Any, fills: int, pnl: Money) -> None:
        self._add("vol_session", session.ticker, session.reason, fills, pnl)

    def market_snapshot(self, ts_ns: int, scan: Any, terms: Any, session: int | None) -> None:
        self._add("snapshot", scan.ticker, str(scan.regime), session)


def _frame(name: str, **msg: Any) -> bytes:
    frame = copy.deepcopy(orjson.loads((DATA / f"{name}.json").read_bytes()))
    frame["msg"].update(msg)
    return orjson.dumps(frame)


def _snapshot(seq: int = 2, bid: str = "0.4500", ask_no: str = "0.5500") -> bytes:
    frame = orjson.loads(_frame("orderbook_snapshot.yes_price", market_ticker=TICKER,
                                yes_dollars_fp=[[bid, "100.00"]],
                                no_dollars_fp=[[ask_no, "100.00"]]))  # fmt: skip
    frame["seq"] = seq
    return orjson.dumps(frame)


def _core(trading: bool = True, **risk: Any) -> tuple[TradingCore, Sink]:
    sink = Sink()
    config = KmmConfig.model_validate({"risk": risk} if risk else {})
    core = build_core(config, start_ns=T0, records=sink, env="sim")
    core.add_market(MarketSpec(TICKER, PriceGrid.linear_cent(), T0 + 86_400 * 10**9, 0.0))
    if trading:
        bucket = TokenBucket(200, 100, T0)
        core.start_trading(WriteScheduler(bucket), ExecSettings(), Backoff(jitter=0.0))
    return core, sink


def _of(kind: type[A], actions: list[Action]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def _fill(trade_id: str, price: str = "0.4500", count: str = "2.00", **more: Any) -> bytes:
    return _frame(
        "fill", trade_id=trade_id, market_ticker=TICKER, yes_price_dollars=price,
        count_fp=count, book_side="bid", action="buy", side="yes", purchased_side="yes",
        outcome_side="yes",
        client_order_id=None, **more,
    )  # fmt: skip


def test_a_snapshot_becomes_orders_to_send_without_any_io() -> None:
    core, _ = _core()

    core.on_frame(_snapshot(), T0)
    assert core.quotes_pending
    quotes = core.decide_quotes(T0 + MS)

    creates = _of(StartCreate, core.take_actions())
    assert quotes[TICKER].bid_price is not None
    assert {c.order.side for c in creates} == {BookSide.BID, BookSide.ASK}
    bid = next(c.order for c in creates if c.order.side is BookSide.BID)
    ask = next(c.order for c in creates if c.order.side is BookSide.ASK)
    assert bid.price < 4500 + 1000 and ask.price > bid.price
    assert all(c.order.post_only for c in creates)


def test_the_tape_gets_its_row_after_the_orders_were_handed_on() -> None:
    core, sink = _core()
    core.on_frame(_snapshot(), T0)

    quotes = core.decide_quotes(T0 + MS)
    assert "tape" not in sink.rows
    core.tape_quotes(quotes, T0 + MS)

    (row,) = sink.rows["tape"]
    assert row[1:3] == (TICKER, "quote")


def test_without_a_planner_quotes_are_decided_but_nothing_is_sent() -> None:
    core, _ = _core(trading=False)
    core.on_frame(_snapshot(), T0)

    core.decide_quotes(T0 + MS)

    assert _of(StartCreate, core.take_actions()) == []


def test_a_fill_is_booked_once_recorded_printed_and_moves_the_position() -> None:
    core, sink = _core()
    core.on_frame(_snapshot(), T0)

    core.on_frame(_fill("t-1"), T0 + MS)
    core.on_frame(_fill("t-1"), T0 + 2 * MS)  # the same trade again

    assert core.portfolio.net_qty(TICKER) == 200
    assert sink.rows["fill"] == [("t-1", 200, "stream")]
    prints = _of(Print, core.take_actions())
    assert len(prints) == 1 and "fill bid 2.00 @ 0.4500" in prints[0].line
    assert core.report.fills == 1


def test_fills_read_back_are_booked_once_with_their_source() -> None:
    core, sink = _core()
    core.on_frame(_fill("t-1"), T0)
    fill_t2 = core.pipeline.decoder.decode(_fill("t-2"))
    fill_t1 = core.pipeline.decoder.decode(_fill("t-1"))
    assert isinstance(fill_t2, Fill) and isinstance(fill_t1, Fill)

    new = core.on_fills_read([fill_t1, fill_t2], "reconnect", T0 + MS)

    assert new == 1
    assert [r[2] for r in sink.rows["fill"]] == ["stream", "reconnect"]


def test_a_sequence_gap_asks_for_a_fresh_snapshot_and_pulls_the_quotes() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(seq=2), T0)
    core.take_actions()

    gap = orjson.loads(_frame("orderbook_delta.no.yes_price", market_ticker=TICKER))
    gap["seq"] = 9
    core.on_frame(orjson.dumps(gap), T0 + MS)

    assert _of(Resync, core.take_actions()) == [Resync((2,))]
    assert not core.pipeline.markets[TICKER].book.trusted


def test_the_fill_channel_going_live_reads_fills_back_at_start_then_after_reconnects() -> None:
    core, _ = _core()
    subscribed = _frame("subscribed", channel="fill", sid=13)

    core.on_frame(subscribed, T0)
    core.on_frame(subscribed, T0 + MS)

    assert _of(ReadFills, core.take_actions()) == [ReadFills("start"), ReadFills("reconnect")]


def test_a_deactivated_market_is_blocked_and_activation_asks_for_a_fresh_book() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)
    core.take_actions()

    core.on_frame(_frame("market_lifecycle_v2.deactivated", market_ticker=TICKER), T0 + MS)
    said = [a.line for a in _of(Say, core.take_actions())]
    assert said == [f"{TICKER}: market deactivated (paused) by the venue: quotes pulled"]
    assert core.risk.blocked[TICKER]

    core.on_frame(
        _frame("market_lifecycle_v2.deactivated", market_ticker=TICKER,
               event_type="activated", is_deactivated=False),
        T0 + 2 * MS,
    )  # fmt: skip
    assert TICKER not in core.risk.blocked
    assert _of(Resync, core.take_actions()) == [Resync((2,))]


def test_a_loss_beyond_the_daily_limit_halts_cancels_and_asks_to_go_flat() -> None:
    core, _ = _core(max_daily_loss_dollars="1")
    core.on_frame(_snapshot(), T0)
    core.decide_quotes(T0 + MS)
    for start in _of(StartCreate, core.take_actions()):
        assert core.planner is not None
        ack = CreateAck(f"v-{start.req.client_order_id}", None, 0, start.order.count, None)
        core.planner.on_created(start.req, ack, T0 + 2 * MS)
    core.on_tick(T0 + 2 * MS)  # the day starts flat
    core.on_frame(_fill("t-1", price="0.4500", count="50.00"), T0 + 3 * MS)
    core.on_frame(_snapshot(seq=3, bid="0.0100", ask_no="0.0300"), T0 + 4 * MS)  # the mid falls
    core.take_actions()

    core.on_tick(T0 + 1_000 * MS)

    actions = core.take_actions()
    assert core.halted is not None and "loss" in core.halted
    assert _of(GoFlat, actions) == [GoFlat()]
    assert len(_of(StartCancels, actions)) == 1


def test_a_pause_code_from_the_venue_pauses_places() -> None:
    core, sink = _core()

    core.on_exec_event(ExecEvent("rejected", TICKER, "c-1", "paused", "trading_is_paused"), T0)

    assert core.paused
    assert sink.rows["order"][0][1:5] == (TICKER, "c-1", None, "rejected")


def test_a_halt_before_trading_starts_keeps_the_planner_from_placing() -> None:
    core, _ = _core(trading=False)
    core.halt("operator", T0)
    core.start_trading(WriteScheduler(TokenBucket(200, 100, T0)), ExecSettings())

    core.on_frame(_snapshot(), T0 + MS)
    core.decide_quotes(T0 + 2 * MS)

    assert _of(StartCreate, core.take_actions()) == []


def test_reconciliation_names_strays_to_cancel_and_missing_orders_to_read_back() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)
    core.decide_quotes(T0 + MS)
    bid, ask = _of(StartCreate, core.take_actions())
    assert core.planner is not None
    for i, start in enumerate((bid, ask)):
        ack = CreateAck(f"v-{i}", None, 0, start.order.count, None)
        core.planner.on_created(start.req, ack, T0 + 2 * MS)
    prefix = core.ids.prefix
    venue = [
        VenueOrder("v-0", bid.req.client_order_id, TICKER, BookSide.BID, 4400, 0, 500, "resting"),
        VenueOrder("v-9", f"{prefix}-99", TICKER, BookSide.BID, 4000, 0, 100, "resting"),
        VenueOrder("other", "someone-else-1", TICKER, BookSide.ASK, 6000, 0, 100, "resting"),
    ]

    strays, missing = core.reconcile_orders(venue)

    assert [o.order_id for o in strays] == ["v-9"]  # ours by prefix, not tracked
    assert missing == [ask.req.client_order_id]  # we think it rests; the venue does not list it


def test_the_tape_records_what_produced_each_quote_and_which_throttle_held_a_side() -> None:
    core, sink = _core()
    core.on_frame(_snapshot(), T0)
    core.tape_quotes(core.decide_quotes(T0 + MS), T0 + MS)

    core.on_frame(_fill("t-1"), T0 + 2 * MS)  # our bid filled: the bid cools down
    core.tape_quotes(core.decide_quotes(T0 + 3 * MS), T0 + 3 * MS)

    first, *_, last = [row[-1]["terms"] for row in sink.rows["tape"] if row[-1].get("terms")]
    fair, reservation, half, sigma, kappa, held = first
    assert fair == 5000.0 and reservation == 5000.0  # a 45¢ @ 55¢ book, flat: no skew
    assert half > 0 and sigma > 0 and kappa > 0 and held == ""
    assert last[1] < 5000.0  # long 2 after the fill: the reservation price leans down
    assert last[-1] == "bid:fill_cooldown"


def test_our_creates_in_flight_and_resting_orders_are_left_out_of_the_fair_price() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)
    core.decide_quotes(T0 + MS)
    starts = _of(StartCreate, core.take_actions())
    market = core.pipeline.markets[TICKER]

    # in flight: the feed may show them before their answers come back
    in_flight = {s.order.price: s.order.count for s in starts if s.order.side is BookSide.BID}
    assert in_flight and market.own_yes == in_flight
    assert len(market.own_no) == sum(s.order.side is BookSide.ASK for s in starts)

    assert core.planner is not None
    for start in starts:
        ack = CreateAck(f"v-{start.req.client_order_id}", None, 0, start.order.count, None)
        core.planner.on_created(start.req, ack, T0 + 2 * MS)
        core.on_exec_event(
            ExecEvent("acked", TICKER, start.req.client_order_id, "", ""), T0 + 2 * MS
        )

    assert market.own_yes == in_flight  # resting now, still ours


def test_an_exit_replaces_both_quotes_by_one_reduce_only_order_that_may_take() -> None:
    core, sink = _core()
    core.on_frame(_snapshot(), T0)
    core.on_frame(_fill("t-1"), T0 + MS)  # long 2 YES; the book is 45c / 45c NO (55c ask)

    started = core.start_exit([TICKER, "NOT-TRADED"], ExitStyle.TAKE, "flatten", T0 + 2 * MS)

    assert started == [TICKER]
    assert core.exiting == [TICKER] and core.exits_left() == [TICKER]
    creates = [c.order for c in _of(StartCreate, core.take_actions())]
    (sale,) = [o for o in creates if o.side is BookSide.ASK]
    assert not [o for o in creates if o.side is BookSide.BID]
    assert (sale.price, sale.count) == (4500, 200)  # at the bid: it takes
    assert sale.reduce_only and not sale.post_only
    held = [r[-1]["terms"][-1] for r in sink.rows["tape"] if r[2] == "quote"]
    assert held[-1] == "exit:take"


def test_a_taking_exit_reported_filled_by_its_answer_is_not_sent_again_before_its_fill() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)
    core.on_frame(_fill("t-1"), T0 + MS)  # long 2 YES
    core.start_exit([TICKER], ExitStyle.TAKE, "flatten", T0 + 2 * MS)
    (sale,) = [a for a in _of(StartCreate, core.take_actions()) if a.order.side is BookSide.ASK]
    assert core.planner is not None

    # the answer says it filled at once; the fill message is still on its way
    ack = CreateAck("v-sale", None, sale.order.count, 0, None)
    core.planner.on_created(sale.req, ack, T0 + 3 * MS)
    core.on_frame(_snapshot(seq=3), T0 + 4 * MS)
    core.on_tick(T0 + 5 * MS)
    core.plan(T0 + 6 * MS)

    assert _of(StartCreate, core.take_actions()) == []  # not sold twice
    assert core.exits_left() == [TICKER]  # the booked position is still 2 until the fill
    fill = _frame(
        "fill", trade_id="t-2", order_id="v-sale", market_ticker=TICKER,
        yes_price_dollars="0.4500", count_fp="2.00", client_order_id=None,
        post_position_fp="0.00",
    )  # fmt: skip
    core.on_frame(fill, T0 + 7 * MS)
    assert core.portfolio.net_qty(TICKER) == 0 and core.exits_left() == []


def test_an_exit_is_done_once_flat_with_nothing_of_ours_resting() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)
    core.start_exit([TICKER], ExitStyle.PASSIVE, "stop", T0 + MS)

    assert core.exits_left() == []  # no position: nothing to send
    assert _of(StartCreate, core.take_actions()) == []


def test_a_retired_market_stops_quoting_reduces_only_and_a_readmitted_one_quotes_again() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)
    core.on_frame(_fill("t-1"), T0 + 2 * MS)  # long 2 YES

    core.retire(TICKER, T0 + 3 * MS)

    assert core.retiring == {TICKER} and core.retired() == []  # still long
    assert TICKER in core.risk.reduce_only
    creates = [c.order for c in _of(StartCreate, core.take_actions())]
    assert creates and all(o.side is BookSide.ASK and o.reduce_only for o in creates)

    core.readmit(TICKER, T0 + 4 * MS)

    assert core.retiring == frozenset() and core.exiting == []
    assert TICKER not in core.risk.reduce_only
    market = core.pipeline.markets[TICKER]
    assert market.exit is None and not market.held.startswith("exit")
    quote = core.decide_quotes(T0 + 5 * MS).get(TICKER) or market.quote
    assert quote is not None and quote.ask_qty > 200  # quoted as usual, not just the position


def test_a_retired_market_without_a_position_or_orders_is_done() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)

    core.retire(TICKER, T0 + MS)

    assert core.retired() == [TICKER]
    assert _of(StartCreate, core.take_actions()) == []


def test_a_new_budget_caps_the_market_from_then_on() -> None:
    core, _ = _core()
    core.on_frame(_snapshot(), T0)

    core.set_market_cap(TICKER, 100)

    assert core.risk.max_position(TICKER) == 100
    core.pipeline.decide(TICKER, T0 + MS)
    quotes = core.decide_quotes(T0 + MS)
    assert quotes[TICKER].bid_qty <= 100 and quotes[TICKER].ask_qty <= 100


def test_markets_within_the_exit_window_of_their_close_are_exited_on_the_tick() -> None:
    sink = Sink()
    config = KmmConfig.model_validate(
        {"exit": {"before_close_s": 120, "before_close_style": "passive"}}
    )
    core = build_core(config, start_ns=T0, records=sink, env="sim")
    close_ns = T0 + 200 * 10**9
    core.add_market(MarketSpec(TICKER, PriceGrid.linear_cent(), close_ns, 0.0))
    core.on_frame(_snapshot(), T0)

    core.on_tick(close_ns - 121 * 10**9)
    assert core.exiting == []
    core.on_tick(close_ns - 119 * 10**9)

    assert core.exiting == [TICKER]


# volatility mode


def _volatile_core() -> tuple[TradingCore, Sink]:
    sink = Sink()
    config = KmmConfig.model_validate(
        {
            "markets": {"mode": "volatility"},
            "volatility": {
                "warmup": 20, "min_observations": 20, "stability": 1, "scan_s": 5,
                "chaotic_sigma_per_sqrt_s": 0.05, "illiquid_s": 1000, "vr_base_s": 1,
                "vr_lag": 4, "regime_window_s": 30,
            },
        }
    )  # fmt: skip
    core = build_core(config, start_ns=T0, records=sink, env="sim")
    core.add_market(MarketSpec(TICKER, PriceGrid.linear_cent(), T0 + 86_400 * 10**9, 0.0))
    core.start_trading(
        WriteScheduler(TokenBucket(200, 100, T0)), ExecSettings(), Backoff(jitter=0.0)
    )
    return core, sink


def _swing(core: TradingCore, seconds: int, start: int = 0) -> list[Action]:
    """A book whose bid swings a cent every second (a mean-reverting mid), one tick a second."""
    actions: list[Action] = []
    for i in range(start, start + seconds):
        bid = "0.4500" if i % 2 else "0.4400"
        core.on_frame(_snapshot(seq=2 + i, bid=bid, ask_no="0.4800"), T0 + i * 1000 * MS)
        core.on_tick(T0 + i * 1000 * MS + MS)
        actions += core.take_actions()
    return actions


def test_volatility_mode_quotes_only_in_a_session_its_event_started_within_the_sessions_cap() -> (
    None
):
    core, sink = _volatile_core()

    quiet = _swing(core, 20)  # the scanner warms up: the market is idle

    assert _of(StartCreate, quiet) == []
    assert core.desk is not None and core.desk.idle(TICKER)
    later = _swing(core, 20, start=20)
    creates = [c.order for c in _of(StartCreate, later)]
    assert creates and {o.side for o in creates} == {BookSide.BID, BookSide.ASK}
    assert all(o.count <= 300 for o in creates)  # the session's cap: 3 contracts
    (event,) = [r for r in sink.rows["vol_event"] if r[1] is not None]
    assert event == (TICKER, 1, "")
    assert not core.desk.idle(TICKER)
    assert any(r[2] == 1 for r in sink.rows["snapshot"])  # snapshots of the session


def test_a_session_that_ends_is_recorded_and_its_market_is_idle_again() -> None:
    core, sink = _volatile_core()
    _swing(core, 40)
    assert core.desk is not None and core.desk.manager.running

    core.tape_end(T0 + 41_000 * MS)

    assert sink.rows["vol_session"] == [(TICKER, "stopped", 0, 0)]
    assert core.desk.idle(TICKER) and TICKER in core.exiting
