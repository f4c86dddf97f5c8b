"""The capture-replay exchange on hand-built captures: pass-through, refusals, queue fills,
the trade/delta double count, trades through, netting, amend, cancel, close, markets.json."""

from __future__ import annotations

import io
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from kmm.backtest import (
    PRIVATE_SIDS,
    ConservativeQueue,
    MarketMeta,
    ProbabilisticQueue,
    QueueModel,
    ReplayExchange,
    load_markets_json,
)
from kmm.config import load_config
from kmm.errors import ConfigError, MarketClosed, Rejected
from kmm.kalshi.rest import MarketInfo, OrderRequest, SeriesInfo
from kmm.live import run_capture
from kmm.record import iter_capture, write_markets_json
from kmm.types import BookSide, format_count, format_price

T = "KXT-26DEC05-T40"
T0 = 1_800_000_000_000_000_000
S = 1_000_000_000
META = MarketMeta(T, ((0, 10000, 100),), T0 + 3600 * S, "quadratic_with_maker_fees", Fraction(1))


def _frame(kind: str, msg: dict[str, Any], sid: int = 1, seq: int | None = None) -> str:
    frame: dict[str, Any] = {"type": kind, "sid": sid}
    if seq is not None:
        frame["seq"] = seq
    frame["msg"] = msg
    return orjson.dumps(frame).decode()


def snapshot(yes: list[tuple[int, int]], no: list[tuple[int, int]]) -> str:
    """Bids at YES prices; ``no`` at YES prices too (use_yes_price)."""
    return _frame(
        "orderbook_snapshot",
        {
            "market_ticker": T,
            "yes_dollars_fp": [[format_price(p), format_count(q)] for p, q in yes],
            "no_dollars_fp": [[format_price(p), format_count(q)] for p, q in no],
        },
    )


def delta(side: str, price: int, qty: int) -> str:
    msg = {
        "market_ticker": T,
        "price_dollars": format_price(price),
        "delta_fp": format_count(qty),
        "side": side,
    }
    return _frame("orderbook_delta", msg)


def trade(price: int, count: int, taker_side: str) -> str:
    msg = {
        "trade_id": "t",
        "market_ticker": T,
        "yes_price_dollars": format_price(price),
        "no_price_dollars": format_price(10000 - price),
        "count_fp": format_count(count),
        "taker_side": taker_side,
    }
    return _frame("trade", msg, sid=3)


MS = 1_000_000


def replay(
    body: list[str],
    queue: QueueModel | None = None,
    balance: int = 10**9,
    times: list[int] | None = None,
) -> ReplayExchange:
    """Frame ``i`` at ``T0 + i`` seconds, or at ``times[i]``."""
    stamps = times or [T0 + i * S for i in range(len(body))]
    frames = list(zip(stamps, body, strict=True))
    return ReplayExchange(frames, {T: META}, queue or ConservativeQueue(), balance=balance)


def bid(price: int, count: int, coid: str = "c1", **kw: Any) -> OrderRequest:
    return OrderRequest(T, BookSide.BID, price, count, coid, **kw)


def kinds(out: list[tuple[int, bytes]]) -> list[str]:
    return [orjson.loads(f)["type"] for _, f in out]


BOOK = snapshot([(3900, 5000), (4000, 10_000)], [(4200, 3000), (4300, 2000)])


def test_public_frames_pass_through_and_private_ones_are_dropped() -> None:
    sub = orjson.dumps({"id": 1, "type": "subscribed", "msg": {"channel": "ticker", "sid": 2}})
    sub_fill = orjson.dumps({"id": 2, "type": "subscribed", "msg": {"channel": "fill", "sid": 9}})
    theirs = _frame("fill", {"trade_id": "x", "market_ticker": T}, sid=9)
    body = [sub.decode(), sub_fill.decode(), BOOK, theirs, trade(4000, 100, "no"), "{not json"]
    ex = replay(body)
    assert ex.next_time_ns() == T0
    out = ex.advance(T0 + 10 * S)
    assert [f for _, f in out] == [sub, BOOK.encode(), trade(4000, 100, "no").encode()]
    assert [t for t, _ in out] == [T0, T0 + 2 * S, T0 + 4 * S]
    assert ex.skipped == 1
    assert ex.next_time_ns() is None


def test_advance_stops_at_until() -> None:
    ex = replay([BOOK, delta("yes", 4000, 100)])
    assert len(ex.advance(T0)) == 1
    assert ex.next_time_ns() == T0 + S


def test_post_only_cross_is_refused_with_kalshis_code() -> None:
    ex = replay([BOOK])
    ex.advance(T0)
    with pytest.raises(Rejected) as info:
        ex.create_order(bid(4200, 100), T0)
    assert (info.value.status, info.value.code, info.value.message) == (
        400,
        "invalid_order",
        "post only cross",
    )
    with pytest.raises(Rejected, match="post only cross"):
        ex.create_order(OrderRequest(T, BookSide.ASK, 4000, 100, "c2"), T0)


@pytest.mark.parametrize(
    ("req", "code"),
    [
        (bid(4050, 100), "invalid_price"),
        (bid(4000, 0), "invalid_order_size"),
        (OrderRequest("NOPE", BookSide.BID, 4000, 100, "c"), "not_found"),
        (bid(4000, 10**9), "insufficient_balance"),
    ],
)
def test_refusals(req: OrderRequest, code: str) -> None:
    ex = replay([BOOK], balance=10**8)
    ex.advance(T0)
    with pytest.raises(Rejected) as info:
        ex.create_order(req, T0)
    assert info.value.code == code


def test_duplicate_client_order_id_is_refused() -> None:
    ex = replay([BOOK])
    ex.advance(T0)
    ex.create_order(bid(4000, 100), T0)
    with pytest.raises(Rejected) as info:
        ex.create_order(bid(3900, 100), T0)
    assert info.value.code == "order_already_exists"


def test_queue_fill_after_the_level_ahead_trades_and_no_double_count() -> None:
    # 100 contracts at 0.40 ahead of us; a trade of 60 and its delta, then 50 more.
    body = [
        BOOK,
        trade(4000, 6000, "no"),
        delta("yes", 4000, -6000),
        trade(4000, 5000, "no"),
        delta("yes", 4000, -5000),
    ]
    times = [T0, T0 + S, T0 + S + MS, T0 + 3 * S, T0 + 3 * S + MS]
    ex = replay(body, ProbabilisticQueue(), times=times)
    ex.advance(T0)
    ack = ex.create_order(bid(4000, 2000), T0)
    assert (ack.filled, ack.remaining) == (0, 2000)
    assert ex.queue_position(ack.order_id) == 10_000
    ex.advance(T0 + 2 * S)
    assert ex.queue_position(ack.order_id) == 4000  # the delta did not advance us again
    assert ex.fills() == []
    out = ex.advance(T0 + 4 * S)
    assert kinds(out) == ["trade", "fill", "user_order", "market_position", "orderbook_delta"]
    fill = orjson.loads(out[1][1])
    assert fill["sid"] == PRIVATE_SIDS["fill"]
    msg = fill["msg"]
    assert (msg["order_id"], msg["client_order_id"], msg["is_taker"]) == (ack.order_id, "c1", False)
    assert (msg["yes_price_dollars"], msg["count_fp"], msg["book_side"]) == (
        "0.4000",
        "10.00",
        "bid",
    )
    assert msg["post_position_fp"] == "10.00"
    assert ex.order(ack.order_id).remaining == 1000
    (f,) = ex.fills()
    assert (f.qty, f.price, f.side, f.is_taker) == (1000, 4000, BookSide.BID, False)
    assert f.fee > 0  # quadratic_with_maker_fees charges makers
    (pos,) = ex.positions()
    assert (pos.position, pos.fees_paid, pos.market_exposure) == (1000, f.fee, 4000 * 1000)


@pytest.mark.parametrize("model", [ConservativeQueue(), ProbabilisticQueue()], ids=repr)
def test_a_delta_before_its_trade_print_is_not_counted_twice(model: QueueModel) -> None:
    # The local exchange (and Kalshi) send the book decrease first, the print right after.
    body = [BOOK, delta("yes", 4000, -6000), trade(4000, 6000, "no"), trade(4000, 5000, "no")]
    times = [T0, T0 + S, T0 + S + MS, T0 + 2 * S]
    ex = replay(body, model, times=times)
    ex.advance(T0)
    ack = ex.create_order(bid(4000, 2000), T0)
    ex.advance(T0 + S + MS)
    assert ex.queue_position(ack.order_id) == 4000
    assert ex.fills() == []
    ex.advance(T0 + 2 * S)
    assert [f.qty for f in ex.fills()] == [1000]


def test_an_unpaired_decrease_becomes_a_cancel_after_the_window() -> None:
    body = [BOOK, delta("yes", 3900, 1), delta("yes", 4000, -5000), delta("yes", 3900, 1)]
    times = [T0, T0 + S, T0 + 2 * S, T0 + 2 * S + 200 * MS]
    ex = replay(body, ProbabilisticQueue(), times=times)
    ex.advance(T0)
    ack = ex.create_order(bid(4000, 1000), T0)
    ex.advance(T0 + 2 * S + 50 * MS)
    assert ex.queue_position(ack.order_id) == 10_000  # still waiting for a trade print
    ex.advance(T0 + 2 * S + 200 * MS)
    assert ex.queue_position(ack.order_id) == 5000  # nothing was behind us: all from ahead


def test_trade_on_the_other_side_or_worse_price_does_not_fill() -> None:
    ex = replay([BOOK, trade(4000, 50_000, "yes"), trade(3900, 100, "no")])
    ex.advance(T0)
    ex.create_order(bid(3800, 100), T0)
    ex.advance(T0 + 5 * S)
    assert ex.fills() == []


def test_trade_through_our_price_fills_us() -> None:
    ex = replay([BOOK, trade(3900, 150, "no")])
    ex.advance(T0)
    ack = ex.create_order(bid(4000, 300), T0)
    ex.advance(T0 + S)
    assert [f.qty for f in ex.fills()] == [150]
    assert ex.queue_position(ack.order_id) == 0


def test_cancels_ahead_advance_only_the_probabilistic_model() -> None:
    body = [BOOK, delta("yes", 4000, -8000), trade(4000, 2500, "no")]
    cons, prob = replay(body, ConservativeQueue()), replay(body, ProbabilisticQueue())
    for ex in (cons, prob):
        ex.advance(T0)
        ex.create_order(bid(4000, 1000), T0)
        ex.advance(T0 + 2 * S)
    # Conservative: ahead capped at the level (2000), the trade of 2500 fills 500.
    assert [f.qty for f in cons.fills()] == [500]
    # Probabilistic: all of the cancel came from ahead of us (nothing behind): ahead 2000.
    assert [f.qty for f in prob.fills()] == [500]
    body = [BOOK, delta("yes", 4000, 3000), delta("yes", 4000, -4000), trade(4000, 9000, "no")]
    cons, prob = replay(body, ConservativeQueue()), replay(body, ProbabilisticQueue())
    for ex in (cons, prob):
        ex.advance(T0)
        ex.create_order(bid(4000, 1000), T0)
        ex.advance(T0 + 3 * S)
    assert cons.fills() == []
    assert [f.qty for f in prob.fills()] == [1000]


def test_netting_yes_against_no_realizes_the_spread() -> None:
    ex = replay([BOOK, trade(4000, 20_000, "no"), trade(4200, 10_000, "yes")])
    ex.advance(T0)
    ex.create_order(bid(4000, 1000), T0)
    start = ex.balance
    ex.advance(T0 + S)
    ex.create_order(OrderRequest(T, BookSide.ASK, 4200, 1000, "c2"), T0 + S)
    ex.advance(T0 + 2 * S)
    (pos,) = ex.positions()
    assert pos.position == 0
    assert pos.market_exposure == 0
    assert pos.realized_pnl == 200 * 1000  # $0.02 on 10 contracts
    assert ex.balance == start + 200 * 1000 - pos.fees_paid


def test_taker_order_crosses_the_captured_book_without_changing_it() -> None:
    ex = replay([BOOK])
    ex.advance(T0)
    ack = ex.create_order(bid(4300, 4000, post_only=False, time_in_force="immediate_or_cancel"), T0)
    assert (ack.filled, ack.remaining) == (4000, 0)
    assert [(f.price, f.qty, f.is_taker) for f in ex.fills()] == [
        (4200, 3000, True),
        (4300, 1000, True),
    ]
    with pytest.raises(Rejected, match="post only cross"):
        ex.create_order(bid(4200, 100, "c3"), T0)  # the book is unchanged


def test_amend_keeps_the_place_only_when_shrinking_at_the_same_price() -> None:
    ex = replay([BOOK, delta("yes", 4000, 5000), delta("yes", 3900, 1000)])
    ex.advance(T0)
    ack = ex.create_order(bid(4000, 1000), T0)
    ex.advance(T0 + 2 * S)
    got = ex.amend_order(ack.order_id, price=4000, count=500, side=BookSide.BID, now_ns=T0 + 2 * S)
    assert got.remaining == 500
    assert ex.queue_position(ack.order_id) == 10_000
    ex.amend_order(ack.order_id, price=4000, count=800, side=BookSide.BID, now_ns=T0 + 2 * S)
    assert ex.queue_position(ack.order_id) == 15_000
    ex.amend_order(ack.order_id, price=3900, count=800, side=BookSide.BID, now_ns=T0 + 2 * S)
    assert ex.queue_position(ack.order_id) == 6000
    with pytest.raises(Rejected, match="post only cross"):
        ex.amend_order(ack.order_id, price=4200, count=800, side=BookSide.BID, now_ns=T0)


def test_batch_cancel_reports_reduced_by_and_unknown_ids() -> None:
    ex = replay([BOOK])
    ex.advance(T0)
    ack = ex.create_order(bid(4000, 700), T0)
    items = ex.batch_cancel([ack.order_id, "nope"], T0 + 1)
    assert (items[0].order_id, items[0].remaining, items[0].error) == (ack.order_id, 700, None)
    assert isinstance(items[1].error, Rejected) and items[1].error.code == "not_found"
    assert ex.resting_orders() == []
    assert ex.order(ack.order_id).status == "canceled"
    out = ex.advance(T0 + 2)
    assert kinds(out) == ["user_order", "user_order"]
    assert orjson.loads(out[-1][1])["msg"]["status"] == "canceled"


def test_market_closes_at_close_time_and_on_lifecycle() -> None:
    ex = replay([BOOK])
    ex.advance(T0)
    ack = ex.create_order(bid(4000, 100), T0)
    ex.advance(META.close_ns or 0)
    assert ex.order(ack.order_id).status == "canceled"
    with pytest.raises(MarketClosed):
        ex.create_order(bid(4000, 100, "c2"), META.close_ns or 0)
    life = _frame("market_lifecycle_v2", {"market_ticker": T, "event_type": "closed"})
    ex = replay([BOOK, life])
    ex.advance(T0 + S)
    with pytest.raises(MarketClosed):
        ex.create_order(bid(4000, 100), T0 + S)


def _info(ticker: str) -> MarketInfo:
    return MarketInfo(ticker, "KXT-26DEC05", "active", T0, ((0, 10000, 100),), None, None)


def test_markets_json_round_trip(tmp_path: Path) -> None:
    series = {"KXT-26DEC05": SeriesInfo("KXT", "quadratic_with_maker_fees", "0.5")}
    path = write_markets_json(tmp_path, [_info(T)], series)
    assert path == tmp_path / "markets.json"
    (row,) = json.loads(path.read_text())["markets"]
    assert row["price_ranges"] == [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]
    got = load_markets_json(path)
    assert got == {
        T: MarketMeta(
            T, ((0, 10000, 100),), T0, "quadratic_with_maker_fees", Fraction(1, 2), "KXT-26DEC05"
        )
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "not JSON"),
        ('{"version": 2}', "not a version 1 markets file"),
        ('{"version": 1, "markets": [{"ticker": "A"}]}', "markets[0].fee_type"),
        (
            '{"version": 1, "markets": [{"ticker": "A", "close_ns": null, "fee_type": "x",'
            ' "price_ranges": [{"start": "0.5", "end": "0.1", "step": "0.01"}]}]}',
            "markets[0]",
        ),
    ],
)
def test_markets_json_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "markets.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_markets_json(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: ") and message in problem and "\n" not in problem
    with pytest.raises(ConfigError, match="cannot read markets file"):
        load_markets_json(tmp_path / "missing.json")


@pytest.mark.asyncio
async def test_a_capture_recorded_from_the_local_exchange_replays(tmp_path: Path) -> None:
    environ = {
        "KMM__RECORD__RUNS_DIR": str(tmp_path / "runs"),
        "KMM__RECORD__LEDGER_PATH": str(tmp_path / "runs" / "ledger.sqlite"),
        "KMM__SIM__STATE_DIR": str(tmp_path / "state"),
        "KMM__SIM__MARKETS": "2",
        "KMM__MARKETS__MAX_MARKETS": "2",
    }
    out = io.StringIO()
    assert await run_capture(load_config(None, environ), duration_s=3.0, out=out) == 0
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    markets = load_markets_json(run_dir / "markets.json")
    assert len(markets) == 2
    captured = list(iter_capture(run_dir / "capture.jsonl.gz"))
    ex = ReplayExchange(captured, markets, ConservativeQueue(), balance=10**10)
    passed: list[tuple[int, bytes]] = []
    placed: set[str] = set()
    while (at := ex.next_time_ns()) is not None:
        passed += ex.advance(at)
        for ticker in markets:
            # One bid at the best bid of each market as soon as it has a book.
            best = ex.best(ticker, BookSide.BID)
            if best is not None and ticker not in placed:
                placed.add(ticker)
                ex.create_order(OrderRequest(ticker, BookSide.BID, best, 100, f"c-{ticker}"), at)
    public = [f for _, f in passed if orjson.loads(f)["type"] not in PRIVATE_SIDS]
    assert public == [f.frame.encode() for f in captured]  # kmm capture has no private frames
    assert ex.skipped == 0
    assert placed == set(markets)
    for fill in ex.fills():  # whatever filled is at the price we bid, as a maker
        assert not fill.is_taker and fill.qty <= 100
