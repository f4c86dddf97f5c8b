"""The whole bot against the real local exchange over loopback sockets.

Each test starts a :class:`~kmm.sim.server.SimServer` on a free port and runs the real
:class:`~kmm.engine.LiveEngine` against it: REST on aiohttp, the websocket on ``websockets``,
signed requests, the token bucket. Faults are injected at the venue through its fault plan;
market moves are made by another account trading on the venue. After every scenario the bot's
fills, resting orders and positions must equal the exchange's exactly. Waits are bounded, but
no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from kmm.config import KmmConfig
from kmm.engine import LiveEngine
from kmm.kalshi.auth import Signer, load_private_key
from kmm.risk import HaltState
from kmm.sim.engine import OrderRequest, SelfTradePrevention, TimeInForce
from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_DOLLAR, QTY_SCALE, BookSide

pytestmark = pytest.mark.asyncio

TRADER = "crasher"


def _config(tmp_path: Path, **sections: dict[str, Any]) -> KmmConfig:
    base: dict[str, Any] = {
        "markets": {"max_markets": 3},
        "execution": {"min_rest_ms": 0, "reconcile_interval_s": 1.0},
        "risk": {"kill_file": str(tmp_path / "KILL")},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return KmmConfig.model_validate(base)


@dataclasses.dataclass
class Run:
    sim: SimServer
    engine: LiveEngine
    task: asyncio.Task[Any]

    @property
    def venue(self) -> Any:
        return self.sim.venue.engine

    def our_resting(self) -> dict[str, Any]:
        return {
            o.order_id: o
            for t in self.venue.markets
            for o in self.venue.resting_orders(t)
            if o.user_id == self.sim.user_id
        }

    async def until(self, what: Callable[[], bool], reason: str, timeout_s: float = 20.0) -> None:
        await wait_until(what, reason, timeout_s, self.task)

    def quoting(self, ticker: str) -> bool:
        sides = {o.book_side for o in self.our_resting().values() if o.ticker == ticker}
        return sides == {BookSide.BID, BookSide.ASK}

    def trade(
        self, ticker: str, side: BookSide, price: int, contracts: int, *, rest: bool = False
    ) -> None:
        """Another account sends an order straight to the venue (IOC unless ``rest``)."""
        request = OrderRequest(
            ticker,
            side,
            price,
            contracts * QTY_SCALE,
            time_in_force=TimeInForce.GTC if rest else TimeInForce.IOC,
            self_trade_prevention=SelfTradePrevention.TAKER_AT_CROSS,
        )
        self.venue.create_order(TRADER, request, self.sim.venue.clock.now_ns())
        self.sim.venue.publish()

    async def stop(self) -> None:
        self.engine.stop()
        await asyncio.wait_for(self.task, 30)


async def wait_until(
    what: Callable[[], bool],
    reason: str,
    timeout_s: float = 20.0,
    task: asyncio.Task[Any] | None = None,
) -> None:
    """Polls ``what`` until true; fails naming ``reason`` on timeout or if ``task`` ends."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not what():
        if task is not None and task.done():
            task.result()
            raise AssertionError(f"the engine stopped while waiting for: {reason}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for: {reason}")
        await asyncio.sleep(0.02)


def _resting_of(sim: SimServer) -> list[Any]:
    engine = sim.venue.engine
    return [o for t in engine.markets for o in engine.resting_orders(t) if o.user_id == sim.user_id]


async def assert_in_sync(run: Run) -> None:
    """The bot's fills, resting orders and positions equal the exchange's, exactly."""
    await run.until(lambda: _fills_match(run), "the bot's fills to equal the exchange's")
    venue_positions = run.venue.positions_of(run.sim.user_id)
    for ticker in run.engine.core.pipeline.markets:
        venue = venue_positions[ticker].position if ticker in venue_positions else 0
        assert run.engine.core.portfolio.net_qty(ticker) == venue, ticker
    await run.until(
        lambda: _tracked_ids(run) == set(run.our_resting()),
        "the bot's live orders to equal the exchange's resting orders",
    )


def _tracked_ids(run: Run) -> set[str | None]:
    return {
        o.order_id
        for t in run.engine.core.pipeline.markets
        for o in run.engine.core.tracker.live(t)
    }


def _fills_match(run: Run) -> bool:
    venue = sorted(
        (f.trade_id, f.ticker, f.book_side, f.yes_price, f.count, f.fee)
        for f in run.venue.fills_of(run.sim.user_id)
    )
    ours = sorted(
        (f.trade_id, f.ticker, f.side, f.price, f.qty, f.fee) for f in run.engine.core.fills
    )
    return venue == ours


@pytest_asyncio.fixture
async def start(sim_state_dir: Path, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    runs: list[Run] = []

    async def _start(config: KmmConfig | None = None, **options: Any) -> Run:
        sim = SimServer(SimOptions(state_dir=sim_state_dir, **{"flow": False, **options}))
        await sim.start()
        sim.venue.engine.open_account(TRADER, 10**15)
        signer = Signer(sim.key_id, load_private_key(sim.private_key_path), reuse_ms=2_000)
        engine = LiveEngine(
            config or _config(tmp_path), rest_url=sim.rest_url, ws_url=sim.ws_url, signer=signer
        )
        run = Run(sim, engine, asyncio.create_task(engine.run()))
        runs.append(run)
        await run.until(lambda: engine.ready.is_set(), "the engine to start")
        for ticker in engine.core.pipeline.markets:
            await run.until(lambda t=ticker: run.quoting(t), f"two-sided quotes in {ticker}")
        return run

    yield _start
    for run in runs:
        if not run.task.done():
            run.engine.stop()
            await asyncio.gather(run.task, return_exceptions=True)
        await run.sim.stop()


async def test_the_bot_quotes_two_sided_inside_the_book_and_leaves_nothing_on_stop(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()

    for ticker in run.engine.core.pipeline.markets:
        mine = {o.book_side: o.price for o in run.our_resting().values() if o.ticker == ticker}
        others_bid, others_ask = _others_best(run, ticker)
        assert mine[BookSide.BID] < others_ask and mine[BookSide.ASK] > others_bid
        assert mine[BookSide.BID] < mine[BookSide.ASK]
    await assert_in_sync(run)

    await run.stop()

    assert run.our_resting() == {}
    assert run.engine.report.left_resting == []
    # The orders went over the order lane (written in the call that decided them)
    assert run.engine.report.lane_writes >= len(run.engine.core.pipeline.markets) * 2
    assert run.engine.report.lane_fallbacks == 0


def _crash(run: Run, ticker: str) -> None:
    """Sells hard into the bids: every YES bid within 2¢ of the best is taken (ours too)."""
    best_bid, _ = run.venue.best(ticker)
    run.trade(ticker, BookSide.ASK, best_bid - 200, 1_000)


def _others_best(run: Run, ticker: str) -> tuple[int, int]:
    yes, no = run.venue.book_levels(ticker)
    mine = run.our_resting().values()
    my_yes = sum(1 for o in mine if o.ticker == ticker and o.book_side is BookSide.BID)
    assert my_yes == 1
    best_bid = max(yes)
    best_ask = ONE_DOLLAR - max(no)
    return best_bid, best_ask


async def test_a_price_crash_fills_our_bid_and_the_quotes_follow_down_within_caps(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    before = {o.book_side: o.price for o in run.our_resting().values() if o.ticker == ticker}

    _crash(run, ticker)

    await run.until(lambda: run.engine.core.portfolio.net_qty(ticker) > 0, "our bid to be hit")
    await run.until(
        lambda: (
            all(
                o.price < before[o.book_side]
                for o in run.our_resting().values()
                if o.ticker == ticker
            )
            and run.quoting(ticker)
        ),
        "both quotes to move below where they were",
    )
    position = run.engine.core.portfolio.net_qty(ticker)
    assert 0 < position <= run.engine.config.risk.max_position
    await assert_in_sync(run)
    await run.stop()
    assert run.our_resting() == {}


async def test_a_sequence_gap_resyncs_without_reconnecting(start: Callable[..., Any]) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    run.sim.venue.faults.drop_ws_messages(1)
    gaps_before = run.engine.core.pipeline.stats.gaps

    run.trade(ticker, BookSide.BID, 100, 1, rest=True)  # one book delta: dropped
    run.trade(ticker, BookSide.BID, 200, 1, rest=True)  # the next delta exposes the gap

    await run.until(lambda: run.engine.core.pipeline.stats.gaps > gaps_before, "a gap to be seen")
    await run.until(lambda: run.engine.ws.stats.resyncs >= 1, "a get_snapshot resync")
    await run.until(
        lambda: all(m.book.trusted for m in run.engine.core.pipeline.markets.values()),
        "every book trusted again",
    )
    await run.until(lambda: run.quoting(ticker), "quoting again")
    assert run.engine.ws.stats.reconnects == 0
    await assert_in_sync(run)
    await run.stop()


async def test_a_dropped_socket_reconnects_and_orders_and_position_match_after(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    run.sim.venue.faults.close_sockets()
    run.sim.venue.publish()

    await run.until(lambda: run.engine.ws.stats.reconnects >= 1, "a reconnect")
    await run.until(
        lambda: run.engine.core.pipeline.markets[ticker].book.trusted, "a fresh snapshot"
    )
    await run.until(lambda: run.quoting(ticker), "quoting again after the reconnect")
    await assert_in_sync(run)
    _crash(run, ticker)
    await run.until(
        lambda: run.engine.core.portfolio.net_qty(ticker) > 0, "a fill after reconnecting"
    )
    await run.until(lambda: run.quoting(ticker), "quoting again")
    await assert_in_sync(run)
    await run.stop()
    assert run.our_resting() == {}


async def test_a_5xx_on_an_accepted_order_ends_with_the_order_known_and_tracked(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    run.sim.venue.faults.fail_next_writes(1, "5xx", accepted=True)

    _crash(run, ticker)  # moves the book: the bot re-quotes

    await run.until(lambda: run.engine.executor.counters.unknown >= 1, "an unknown outcome")
    await run.until(lambda: _no_unknown(run), "every unknown order settled")
    await run.until(lambda: run.quoting(ticker), "quoting again")
    await assert_in_sync(run)
    await run.stop()


def _no_unknown(run: Run) -> bool:
    return all(
        o.state.value != "unknown"
        for t in run.engine.core.pipeline.markets
        for o in run.engine.core.tracker.live(t)
    )


async def test_a_burst_of_429s_never_stops_the_cancels_of_a_shutdown(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    run.sim.venue.faults.rate_limit_burst(5)

    await run.stop()

    assert run.our_resting() == {}
    assert run.engine.report.left_resting == []


async def test_the_kill_file_halts_quoting_and_leaves_no_resting_order(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    run: Run = await start()

    (tmp_path / "KILL").write_text("stop\n")

    await run.until(
        lambda: run.engine.core.kill_switch.state is HaltState.HALTED, "the kill switch to halt"
    )
    assert run.our_resting() == {}
    assert run.engine.core.halted is not None and "kill file" in run.engine.core.halted
    await asyncio.sleep(1.5)  # a few watch cycles: nothing is placed while halted
    assert run.our_resting() == {}
    await assert_in_sync(run)
    await run.stop()


async def test_sigterm_stops_kmm_run_cleanly_with_nothing_resting(
    sim_state_dir: Path, tmp_path: Path
) -> None:
    sim = SimServer(SimOptions(state_dir=sim_state_dir, flow=False))
    await sim.start()
    env = {
        "KMM__VENUE__REST_URL": sim.rest_url,
        "KMM__VENUE__WS_URL": sim.ws_url,
        "KMM__AUTH__KEY_ID": sim.key_id,
        "KMM__AUTH__PRIVATE_KEY_PATH": str(sim.private_key_path),
        "KMM__MARKETS__MAX_MARKETS": "2",
        "KMM__RISK__KILL_FILE": str(tmp_path / "KILL"),
        "KMM__RECORD__RUNS_DIR": str(tmp_path / "runs"),
        "KMM__RECORD__LEDGER_PATH": str(tmp_path / "runs" / "ledger.sqlite"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kmm",
        "run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**_base_env(), **env},
    )
    try:
        await wait_until(lambda: len(_resting_of(sim)) >= 4, "kmm run to quote two markets", 60)
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        left = _resting_of(sim)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await sim.stop()
    assert process.returncode == 0, out.decode()
    assert left == []
    assert b"no order of ours rests" in out


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}


async def test_a_trading_pause_pulls_quotes_and_quoting_resumes_after_it(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    faults = run.sim.venue.faults
    clock = run.sim.venue.clock

    faults.pause_trading(None, clock.now_ns())
    run.sim.venue.publish()

    await run.until(lambda: run.our_resting() == {}, "no order of ours resting in the pause")
    await run.until(lambda: run.engine.core.risk.exchange_paused, "the bot to see the pause", 30)
    faults.resume_trading(clock.now_ns())
    run.sim.venue.publish()
    await run.until(lambda: run.quoting(ticker), "quoting again after the pause", 30)
    await assert_in_sync(run)
    await run.stop()


async def test_orders_go_in_the_configured_order_group(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    run: Run = await start(_config(tmp_path, risk={"order_group_contracts_limit": 100}))

    groups = {o.order_group_id for o in run.our_resting().values()}

    assert len(groups) == 1 and None not in groups
    await run.stop()
    assert run.our_resting() == {}


async def test_reconciliation_cancels_a_resting_order_of_ours_it_does_not_track(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    stray = OrderRequest(
        ticker, BookSide.BID, 100, QTY_SCALE, client_order_id=f"{run.engine.tracker_prefix}-9999"
    )
    order_id = run.venue.create_order(run.sim.user_id, stray, run.sim.venue.clock.now_ns())
    run.sim.venue.publish()

    await run.until(
        lambda: order_id.order.order_id not in run.our_resting(), "the stray to be cancelled"
    )
    await assert_in_sync(run)
    await run.stop()


async def test_a_settled_market_pays_out_once_and_the_position_goes_flat(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    _crash(run, ticker)
    await run.until(lambda: run.engine.core.portfolio.net_qty(ticker) > 0, "a long position")
    await assert_in_sync(run)
    position = run.engine.core.portfolio.position(ticker)
    expected = position.realized + position.unrealized(ONE_DOLLAR)
    now = run.sim.venue.clock.now_ns

    run.venue.close_market(ticker, now())
    run.venue.determine_market(ticker, "yes", now())
    run.venue.settle_market(ticker, now())
    run.sim.venue.publish()

    await run.until(lambda: run.engine.core.portfolio.net_qty(ticker) == 0, "the settlement booked")
    assert run.engine.core.portfolio.position(ticker).realized == expected
    assert not any(o.ticker == ticker for o in run.our_resting().values())
    await run.stop()
    assert run.our_resting() == {}


async def test_an_operator_halt_cancels_everything_and_resume_quotes_again(
    start: Callable[..., Any],
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))

    run.engine.halt("operator")

    await run.until(
        lambda: run.engine.core.kill_switch.state is HaltState.HALTED, "halted and confirmed flat"
    )
    assert run.our_resting() == {}
    run.engine.resume()
    await run.until(lambda: run.quoting(ticker), "quoting again after resume")
    assert run.engine.core.halted is None
    await assert_in_sync(run)
    await run.stop()
