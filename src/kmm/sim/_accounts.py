"""Accounts of the matching engine: cash, collateral, positions and fees, in integer units.

Theory of operation
-------------------
Every fill is a purchase: the YES buyer pays the YES price per contract and the NO buyer pays
``$1`` minus it, so each matched contract puts exactly ``$1`` in escrow. A user who buys the
leg opposite to a position they hold **nets**: each pair of one YES and one NO contract is
worth ``$1`` at settlement whatever the result, so the exchange pays that ``$1`` back at once
and the position shrinks. For every user and market the engine keeps the signed position
(YES positive), its cost basis (``market_exposure``), realized P&L, fees and volume.

A user's ``cash`` is everything not paid out; part of it is ``reserved`` for resting orders.
The reservation of one user in one market is, per side, the worst cash outflow if every order
on that side filled at its limit price, less the ``$1`` per contract that netting against the
opposite holding would pay back (never below zero), plus a fee reserve. Filling at a better
price, filling fewer contracts, or a fill on the other side only lower it, so after each fill
the recomputed reservation has fallen by at least that fill's outflow and ``cash - reserved``
(the available balance) never goes negative.

The fee reserve is the taker fee for one 0.01-contract lot at the most expensive price the
order can fill at (its own price, capped at 50¢), times the lots left. Because Kalshi rounds
each fill's fee up to $0.0001, the fees of many partial fills can exceed the fee of one fill
of the same size; per-lot rounding bounds every split. In a market with sub-cent ticks a
fill of a fractional count can also cost a rounding fee (below) of up to $0.000099, so there
the reserve adds that much per lot (whole-cent markets never round).

**Subaccounts** (``getting_started/subaccounts.md``): every user has a primary subaccount 0
and may open numbered subaccounts 1–63, each an :class:`Account` of its own with its own
cash, reservations, positions, orders, fills and settlements. What is the user's, not one
subaccount's, is shared: the set of ``client_order_id`` values used (so an id is unique per
user) and the owner used for self-trade prevention (``owner``: the primary account), since
the docs say nothing of either being per subaccount. Cash moves between subaccounts only by
transfers, which net to zero for the user.

Each subaccount also carries Kalshi's **netting setting** (``PUT /portfolio/subaccounts/netting``):
on by default for the primary account, and a numbered subaccount takes the primary's setting at
the moment it is created. The docs do not say what turning it off changes, so it is recorded and
reported but the engine nets every fill as described above either way.

Balances are kept at direct-member precision, $0.0001 (``getting_started/fee_rounding.md``):
a fill's ``balance_change = -cost - trade_fee`` is floored to $0.0001 and the difference is a
rounding fee; a per-order accumulator of rounding fees pays back $0.0001 whenever it exceeds
$0.0001, never making a fill's net fee negative.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Final

from kmm.fees import MAKER_COEFFICIENTS, TAKER_COEFFICIENT
from kmm.types import ONE_DOLLAR, QTY_SCALE, Money, Price, Qty

if TYPE_CHECKING:
    from kmm.sim.engine import Settlement, SimFill, SimOrder, SubaccountTransfer

__all__ = ["BALANCE_PRECISION", "MAX_SUBACCOUNT", "Account", "FeeModel", "MarketAccount"]

BALANCE_PRECISION: Final[Money] = 100
"""Direct-member balance precision, $0.0001, in money units."""

MAX_SUBACCOUNT: Final = 63
"""The highest subaccount number (0 is the primary account)."""

_MONEY_PER_CENTICENT: Final = 100
_HALF: Final = ONE_DOLLAR // 2


class FeeModel:
    """A series' fees as integer coefficients (no ``Fraction`` on the match path).

    ``taker(price, qty)`` and ``maker(price, qty)`` equal :func:`kmm.fees.taker_fee` and
    :func:`kmm.fees.maker_fee` for the series' ``fee_type`` and ``fee_multiplier``.
    """

    __slots__ = ("lots", "maker_den", "maker_num", "taker_den", "taker_num")

    def __init__(self, fee_type: str, multiplier: Fraction) -> None:
        denominator = QTY_SCALE * ONE_DOLLAR
        self.taker_num = TAKER_COEFFICIENT.numerator * multiplier.numerator
        self.taker_den = TAKER_COEFFICIENT.denominator * multiplier.denominator * denominator
        maker = MAKER_COEFFICIENTS.get(fee_type, Fraction(0))
        self.maker_num = maker.numerator * multiplier.numerator
        self.maker_den = maker.denominator * multiplier.denominator * denominator
        self.lots: dict[Price, Money] = {}

    def taker(self, price: Price, qty: Qty) -> Money:
        """The taker fee of one fill, rounded up to $0.0001, in money units."""
        product = self.taker_num * qty * price * (ONE_DOLLAR - price)
        return -(-product // self.taker_den) * _MONEY_PER_CENTICENT

    def maker(self, price: Price, qty: Qty) -> Money:
        """The maker fee of one fill (0 unless the fee type charges makers)."""
        if not self.maker_num:
            return 0
        product = self.maker_num * qty * price * (ONE_DOLLAR - price)
        return -(-product // self.maker_den) * _MONEY_PER_CENTICENT

    def lot_reserve(self, own_price: Price) -> Money:
        """The trade fee reserved per 0.01 contract of an order buying at ``own_price``."""
        reserve = self.lots.get(own_price)
        if reserve is None:
            worst = min(own_price, _HALF)
            reserve = self.lots[own_price] = self.taker(worst, 1)
        return reserve


class MarketAccount:
    """One user's standing in one market.

    Attributes:
        position: Signed contracts held (YES positive, NO negative), 0.01 units.
        cost: Cost basis of the contracts held (``market_exposure``).
        realized: Realized P&L from netting and settlement.
        fees_paid: Sum of the trade fees of this user's fills here.
        total_traded: Sum of what this user paid for contracts here.
        updated_ns: When the position last changed.
        spend, qty, fees: Per side (0 = YES bids, 1 = NO bids) totals over live orders:
            own price × remaining, remaining, and the fee reserve.
        lock: The current reservation.
        settled: Whether the market has settled (the position is gone).
    """

    __slots__ = (
        "cost",
        "fees",
        "fees_paid",
        "lock",
        "position",
        "qty",
        "realized",
        "settled",
        "spend",
        "ticker",
        "total_traded",
        "updated_ns",
    )

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.position: Qty = 0
        self.cost: Money = 0
        self.realized: Money = 0
        self.fees_paid: Money = 0
        self.total_traded: Money = 0
        self.updated_ns = 0
        self.spend: list[Money] = [0, 0]
        self.qty: list[Qty] = [0, 0]
        self.fees: list[Money] = [0, 0]
        self.lock: Money = 0
        self.settled = False

    def reservation(self) -> Money:
        """The reservation the current position and live orders require.

        Per side: the spend of its live orders less $1 per contract that netting against
        the opposite holding would pay back (never below zero), plus its fee reserve.
        """
        position = self.position
        spend = self.spend
        qty = self.qty
        fees = self.fees
        lock = fees[0] + fees[1]
        # YES bids net against NO held (position < 0), NO bids against YES held
        held = -position if position < 0 else 0
        netted = held if held < qty[0] else qty[0]
        outflow = spend[0] - ONE_DOLLAR * netted
        if outflow > 0:
            lock += outflow
        held = position if position > 0 else 0
        netted = held if held < qty[1] else qty[1]
        outflow = spend[1] - ONE_DOLLAR * netted
        if outflow > 0:
            lock += outflow
        return lock

    def commit(self, side: int, own_price: Price, fee_lot: Money, qty: Qty) -> None:
        """Adds ``qty`` of a live order (negative ``qty`` removes it)."""
        self.spend[side] += own_price * qty
        self.qty[side] += qty
        self.fees[side] += fee_lot * qty

    def buy(self, side: int, own_price: Price, qty: Qty) -> Money:
        """Books a purchase of ``qty`` of leg ``side`` at ``own_price``.

        Returns:
            The money netting pays back ($1 per YES/NO pair closed).
        """
        position = self.position
        held = -position if side == 0 else position
        netted = (held if held < qty else qty) if held > 0 else 0
        released = 0
        if netted:
            removed = self.cost if netted == held else self.cost * netted // held
            self.cost -= removed
            released = ONE_DOLLAR * netted
            self.realized += released - removed - own_price * netted
        self.cost += own_price * (qty - netted)
        self.position = position + qty if side == 0 else position - qty
        self.total_traded += own_price * qty
        return released


class Account:
    """One subaccount of one user: cash, reservation, and everything it did.

    Attributes:
        user_id: The user.
        subaccount: The subaccount number (0 = primary, 1–63).
        owner: The user's primary account (itself for the primary): self-trade prevention
            compares owners.
        cash: Money not paid out, including what is reserved.
        reserved: Sum of the market reservations.
        markets: The subaccount's account per market ticker.
        orders: Every order, in creation order.
        fills: Every fill, in time order.
        client_order_ids: Every ``client_order_id`` the user has used (one set per user,
            shared by its subaccounts).
        settlements: Settlement rows, in time order.
        subaccounts: On the primary account, the numbered subaccounts by number (empty on a
            numbered one).
        transfers: On the primary account, the user's transfers between subaccounts, in
            time order, by ``client_transfer_id``.
        netting: The subaccount's netting setting (a numbered subaccount starts with the
            primary's setting at its creation).
    """

    __slots__ = (
        "cash",
        "client_order_ids",
        "fills",
        "markets",
        "netting",
        "orders",
        "owner",
        "reserved",
        "settlements",
        "subaccount",
        "subaccounts",
        "transfers",
        "user_id",
    )

    def __init__(self, user_id: str, cash: Money, owner: Account | None = None) -> None:
        self.user_id = user_id
        self.owner: Account = self if owner is None else owner
        self.subaccount = 0 if owner is None else len(owner.subaccounts) + 1
        self.cash = cash
        self.reserved: Money = 0
        self.markets: dict[str, MarketAccount] = {}
        self.orders: list[SimOrder] = []
        self.fills: list[SimFill] = []
        self.client_order_ids: set[str] = set() if owner is None else owner.client_order_ids
        self.settlements: list[Settlement] = []
        self.subaccounts: dict[int, Account] = {}
        self.transfers: dict[str, SubaccountTransfer] = {}
        self.netting: bool = True if owner is None else owner.netting

    @property
    def available(self) -> Money:
        """Cash not reserved for resting orders."""
        return self.cash - self.reserved

    def family(self) -> list[Account]:
        """The primary account and its numbered subaccounts, in number order (on the primary)."""
        return [self, *self.subaccounts.values()]
