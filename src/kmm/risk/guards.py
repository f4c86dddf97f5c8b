"""Quote gating per market, and the drift checks of reconciliation.

Theory of operation
-------------------
The executor passes every desired quote through :func:`gate_quote` before diffing it against
the live orders. The gate first decides the market's quoting mode, in this order (the first
that applies wins):

==========================================================  ===============  ===============
condition                                                   mode             cause
==========================================================  ===============  ===============
kill switch halting or halted                               off              ``halted``
exchange trading paused                                     off              ``exchange_paused``
market blocked (paused market, position drift)              off              ``blocked``
market disabled by the operator (``ctx.disabled``)          off              ``disabled``
book untrusted (sequence gap, integrity error, no snapshot)  off              ``untrusted``
no book update for ``stale_book_ns``                        off              ``stale``
within ``no_quote_before_close_ns`` of the close            off              ``closing``
within ``wind_down_before_close_ns`` of the close           reduce-only      ``wind_down``
market in ``ctx.reduce_only``                               reduce-only      ``reduce_only``
otherwise                                                   normal
==========================================================  ===============  ===============

"Off" returns an empty quote: the diff then cancels the market's orders (cancels still go
while trading is paused). "Reduce-only" keeps only the side that reduces the position, sized
to at most the position. Then each remaining side is held to the limits of
:mod:`kmm.risk.limits`, read as a *target*: the desired resting size on a side replaces that
side's orders, so it is bounded by ``max_position − s`` and ``max_total_position − (W − w) − s``
(``s`` the position signed for the side, ``W − w`` the worst case of the other markets), by
``max_order_qty`` and by the notional cap, and rounded down to a lot. A side that comes to 0 is
dropped. The transition from the live orders to the target (an amend up, a place) is checked
again, order by order, by :func:`~kmm.risk.limits.check_order`, which counts the orders in
flight; so the gate shapes targets and ``check_order`` is the hard guard.

When a market's mode or its cause changes, a :class:`~kmm.risk.limits.ModeChange` is recorded
in the context for the log (``ctx.take_events()``); an unchanged mode allocates nothing.

The drift checks compare kmm's view with the exchange's after a REST read:
:func:`compare_positions` and :func:`compare_orders`.

The module is pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Final, NamedTuple

from kmm.risk._text import contracts, seconds
from kmm.risk.limits import ModeChange, QuoteMode, RiskContext, RiskLimits
from kmm.types import ONE_DOLLAR, Price, Qty, Quote

__all__ = [
    "Cause",
    "Drift",
    "MarketStatus",
    "compare_orders",
    "compare_positions",
    "gate_quote",
    "market_mode",
]


class MarketStatus(NamedTuple):
    """What the gate needs to know about a market's data.

    Attributes:
        book_ns: When the book was last known current: its own last update, or any message
            on its live subscription (a quiet market on a live feed is not stale).
        trusted: False after a sequence gap or an integrity error, until a fresh snapshot.
        close_ns: The market's close time (Unix ns), or ``None`` if unknown.
    """

    book_ns: int
    trusted: bool = True
    close_ns: int | None = None


class Cause(StrEnum):
    """Why a market is quoted in its mode (see the module docstring)."""

    NONE = "none"
    HALTED = "halted"
    EXCHANGE_PAUSED = "exchange_paused"
    BLOCKED = "blocked"
    DISABLED = "disabled"
    UNTRUSTED = "untrusted"
    STALE = "stale"
    CLOSING = "closing"
    WIND_DOWN = "wind_down"
    REDUCE_ONLY = "reduce_only"


_Mode = tuple[QuoteMode, Cause]
_OFF = QuoteMode.OFF
_NORMAL: Final[_Mode] = (QuoteMode.NORMAL, Cause.NONE)
_HALTED: Final[_Mode] = (_OFF, Cause.HALTED)
_PAUSED: Final[_Mode] = (_OFF, Cause.EXCHANGE_PAUSED)
_BLOCKED: Final[_Mode] = (_OFF, Cause.BLOCKED)
_DISABLED: Final[_Mode] = (_OFF, Cause.DISABLED)
_UNTRUSTED: Final[_Mode] = (_OFF, Cause.UNTRUSTED)
_STALE: Final[_Mode] = (_OFF, Cause.STALE)
_CLOSING: Final[_Mode] = (_OFF, Cause.CLOSING)
_WIND_DOWN: Final[_Mode] = (QuoteMode.REDUCE_ONLY, Cause.WIND_DOWN)
_REDUCE_ONLY: Final[_Mode] = (QuoteMode.REDUCE_ONLY, Cause.REDUCE_ONLY)


def market_mode(
    ticker: str, status: MarketStatus, ctx: RiskContext, now_ns: int
) -> tuple[QuoteMode, Cause]:
    """The market's quoting mode now, and its cause (the table of the module docstring)."""
    if not ctx.kill_switch.quoting_allowed:
        return _HALTED
    if ctx.exchange_paused:
        return _PAUSED
    if ticker in ctx.blocked:
        return _BLOCKED
    if ticker in ctx.disabled:
        return _DISABLED
    if not status.trusted:
        return _UNTRUSTED
    if now_ns - status.book_ns >= ctx.limits.stale_book_ns:
        return _STALE
    return _close_mode(ticker, status.close_ns, ctx, now_ns)


def _close_mode(ticker: str, close_ns: int | None, ctx: RiskContext, now_ns: int) -> _Mode:
    if close_ns is not None:
        left = close_ns - now_ns
        if left <= ctx.limits.no_quote_before_close_ns:
            return _CLOSING
        if left <= ctx.limits.wind_down_before_close_ns:
            return _WIND_DOWN
    if ticker in ctx.reduce_only:
        return _REDUCE_ONLY
    return _NORMAL


def gate_quote(quote: Quote, status: MarketStatus, ctx: RiskContext, now_ns: int) -> Quote:
    """Holds a desired quote to the market's mode and to the limits.

    Args:
        quote: The strategy's desired quote.
        status: The market's data status.
        ctx: The limits, exposures, kill switch and market flags.
        now_ns: The current time.

    Returns:
        The quote to diff: ``quote`` itself when nothing changed, else a new quote with
        sides dropped (price ``None``, size 0) or sizes clipped.
    """
    ticker = quote.ticker
    mode = market_mode(ticker, status, ctx, now_ns)
    if ctx.modes.get(ticker, _NORMAL) != mode:
        ctx.modes[ticker] = mode
        reason = _EXPLAIN[mode[1]](ticker, status, ctx, now_ns)
        ctx.events.append(ModeChange(now_ns, ticker, mode[0], reason))
    if mode[0] is _OFF:
        if quote.bid_price is None and quote.ask_price is None:
            return quote
        return Quote(ticker, None, 0, None, 0)
    return _hold_to_limits(quote, ctx, mode[0] is QuoteMode.REDUCE_ONLY)


def _hold_to_limits(quote: Quote, ctx: RiskContext, reduce: bool) -> Quote:
    limits, book, ticker = ctx.limits, ctx.exposures, quote.ticker
    others = book.total_worst - book.worst(ticker)
    pos = book.get(ticker).position
    bid = _target(quote.bid_price, quote.bid_qty, pos, others, limits, reduce, True)
    ask = _target(quote.ask_price, quote.ask_qty, -pos, others, limits, reduce, False)
    if bid == quote.bid_qty and ask == quote.ask_qty:
        return quote
    return Quote(
        ticker, quote.bid_price if bid else None, bid, quote.ask_price if ask else None, ask
    )


def _target(
    price: Price | None,
    qty: Qty,
    signed: Qty,
    others: Qty,
    limits: RiskLimits,
    reduce: bool,
    is_bid: bool,
) -> Qty:
    """The size one side may target: 0 drops the side."""
    if price is None or qty <= 0 or not 0 < price < ONE_DOLLAR:
        return 0
    room = limits.max_position - signed
    total = limits.max_total_position - others - signed
    if total < room:
        room = total
    if reduce and -signed < room:
        room = -signed
    if limits.max_order_qty < room:
        room = limits.max_order_qty
    notional = limits.max_order_notional // (price if is_bid else ONE_DOLLAR - price)
    if notional < room:
        room = notional
    if room >= qty:
        return qty
    return room - room % limits.lot_qty if room > 0 else 0


# Reasons for the log, built only when a market's mode changes

_Explain = Callable[[str, MarketStatus, RiskContext, int], str]


def _explain_halted(ticker: str, status: MarketStatus, ctx: RiskContext, now_ns: int) -> str:
    switch = ctx.kill_switch
    return f"kill switch {switch.state}: {switch.reason}"


def _explain_stale(ticker: str, status: MarketStatus, ctx: RiskContext, now_ns: int) -> str:
    age = seconds(now_ns - status.book_ns)
    return f"book stale: no update for {age} (stale_book_s {seconds(ctx.limits.stale_book_ns)})"


def _explain_closing(ticker: str, status: MarketStatus, ctx: RiskContext, now_ns: int) -> str:
    if status.close_ns is not None and status.close_ns <= now_ns:
        return f"market closed {seconds(now_ns - status.close_ns)} ago"
    left = seconds((status.close_ns or now_ns) - now_ns)
    limit = seconds(ctx.limits.no_quote_before_close_ns)
    return f"market closes in {left} (no_quote_before_close_s {limit})"


def _explain_wind_down(ticker: str, status: MarketStatus, ctx: RiskContext, now_ns: int) -> str:
    left = seconds((status.close_ns or now_ns) - now_ns)
    limit = seconds(ctx.limits.wind_down_before_close_ns)
    return f"market closes in {left}: winding down (wind_down_before_close_s {limit})"


def _fixed(text: str) -> _Explain:
    def explain(ticker: str, status: MarketStatus, ctx: RiskContext, now_ns: int) -> str:
        return text

    return explain


def _explain_blocked(ticker: str, status: MarketStatus, ctx: RiskContext, now_ns: int) -> str:
    return f"market blocked: {ctx.blocked.get(ticker)}"


_EXPLAIN: Final[dict[str, _Explain]] = {
    Cause.NONE: _fixed("quoting normally"),
    Cause.HALTED: _explain_halted,
    Cause.EXCHANGE_PAUSED: _fixed("exchange trading is paused"),
    Cause.BLOCKED: _explain_blocked,
    Cause.DISABLED: _fixed("disabled by the operator"),
    Cause.UNTRUSTED: _fixed("book untrusted (sequence gap, integrity error or no snapshot yet)"),
    Cause.STALE: _explain_stale,
    Cause.CLOSING: _explain_closing,
    Cause.WIND_DOWN: _explain_wind_down,
    Cause.REDUCE_ONLY: _fixed("reduce-only mode is set for this market"),
}


# --------------------------------------------------------------------------- drift


class Drift(NamedTuple):
    """A market whose position differs between kmm and the exchange beyond the tolerance.

    Attributes:
        ticker: The market.
        ours: kmm's signed position (0.01 contracts).
        venue: The exchange's signed position.
        tolerance: The tolerance that was exceeded.
    """

    ticker: str
    ours: Qty
    venue: Qty
    tolerance: Qty

    @property
    def difference(self) -> Qty:
        """``venue − ours``."""
        return self.venue - self.ours

    @property
    def reason(self) -> str:
        """A log line naming the market and the numbers."""
        diff = self.difference
        sign = "+" if diff > 0 else ""
        return (
            f"{self.ticker}: position drift: ours {contracts(self.ours)}, venue "
            f"{contracts(self.venue)} (off by {sign}{contracts(diff)}, "
            f"drift_tolerance {contracts(self.tolerance)})"
        )


def compare_positions(
    ours: Mapping[str, Qty], venue: Mapping[str, Qty], tolerance: Qty
) -> list[Drift]:
    """The markets whose positions differ by more than ``tolerance``, by ticker.

    A market missing from one side counts as flat there.

    Raises:
        ValueError: if ``tolerance`` is negative.
    """
    if tolerance < 0:
        raise ValueError(f"drift tolerance must be >= 0, got {tolerance}")
    drifts = []
    for ticker in sorted(ours.keys() | venue.keys()):
        mine, theirs = ours.get(ticker, 0), venue.get(ticker, 0)
        if abs(theirs - mine) > tolerance:
            drifts.append(Drift(ticker, mine, theirs, tolerance))
    return drifts


def compare_orders(
    ours_ids: Iterable[str], venue_ids: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Compares the ids of the orders we believe rest with those the exchange lists.

    Pass only settled orders on our side (an order still in flight may not be listed yet).

    Returns:
        ``(missing, extra)``, each sorted: ours the exchange does not list, and listed
        orders that are not ours (or not known to rest).
    """
    mine, theirs = set(ours_ids), set(venue_ids)
    return sorted(mine - theirs), sorted(theirs - mine)
