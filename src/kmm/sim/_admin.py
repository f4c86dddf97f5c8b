"""Exchange-wide and per-market lifecycle, settlement, and order groups of the engine.

:class:`VenueAdmin` adds to :class:`~kmm.sim._core.MatchCore` the operations the venue (the
server, the background flow, the fault plan) and the order-group endpoints call; see
:mod:`kmm.sim.engine` for the lifecycle rules. :class:`~kmm.sim.engine.MatchingEngine`
extends it with order entry and queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from kmm.errors import IllegalTransition
from kmm.sim._accounts import Account
from kmm.sim._core import OPEN, Market, MatchCore, position_of
from kmm.sim._groups import Group
from kmm.sim._model import (
    MarketLifecycle,
    MarketStatus,
    OrderGroup,
    OrderGroupUpdate,
    PositionUpdate,
    Rejection,
    Settlement,
)
from kmm.types import ONE_DOLLAR, Qty, format_count

__all__ = ["VenueAdmin"]

_MIN_GROUP_LIMIT: Final[Qty] = 100
_MAX_GROUP_LIMIT: Final[Qty] = 1_000_000 * 100
_RESULTS: Final = ("yes", "no")


class VenueAdmin(MatchCore):
    """Lifecycle, settlement and order-group operations (see the module docstring)."""

    # ------------------------------------------------------------------ exchange and lifecycle

    @property
    def trading_active(self) -> bool:
        """``False`` during a trading pause (additive to Contract 1)."""
        return self._trading_active

    def set_trading_active(self, active: bool, now_ns: int) -> None:
        """Pauses or resumes trading; a pause cancels every ``cancel_order_on_pause`` order."""
        self._trading_active = active
        if not active:
            for entry in list(self._on_pause.values()):
                self._cancel_resting(self._markets[entry.order.ticker], entry, now_ns, None, None)

    def set_market_active(self, ticker: str, active: bool, now_ns: int) -> None:
        """Deactivates (status ``inactive``) or reactivates one market.

        Deactivation cancels the market's ``cancel_order_on_pause`` orders; reactivation of
        an inactive market cancels all its resting orders, as Kalshi documents.

        Raises:
            IllegalTransition: from a closed, determined or finalized market.
        """
        mkt = self._market(ticker)
        status = mkt.defn.status
        target = MarketStatus.ACTIVE if active else MarketStatus.INACTIVE
        if status is target:
            return
        if status not in OPEN:
            raise IllegalTransition(ticker, status, target)
        mkt.defn.status = target
        self.lifecycle_version += 1
        event = "activated" if active else "deactivated"
        self._out.append(MarketLifecycle(ticker, event, now_ns, is_deactivated=not active))
        cancel_all = active and status is MarketStatus.INACTIVE
        for entry in list(mkt.book.entries()):
            if cancel_all or (not active and entry.order.cancel_order_on_pause):
                self._cancel_resting(mkt, entry, now_ns, None, None)

    def close_market(self, ticker: str, now_ns: int) -> None:
        """Closes a market: cancels its resting orders; every later order operation is refused.

        Closing before the scheduled close time moves ``close_ns`` to now and emits
        ``close_date_updated``. Closing a closed market does nothing.

        Raises:
            IllegalTransition: if the market is determined or finalized.
        """
        mkt = self._market(ticker)
        defn = mkt.defn
        if defn.status is MarketStatus.CLOSED:
            return
        if defn.status not in OPEN:
            raise IllegalTransition(ticker, defn.status, MarketStatus.CLOSED)
        if now_ns < defn.close_ns:
            defn.close_ns = now_ns
            self.lifecycle_version += 1
            self._out.append(MarketLifecycle(ticker, "close_date_updated", now_ns, close_ns=now_ns))
        defn.status = MarketStatus.CLOSED
        self.lifecycle_version += 1
        for entry in list(mkt.book.entries()):
            self._cancel_resting(mkt, entry, now_ns, None, None)

    def next_schedule_ns(self) -> int | None:
        """When :meth:`apply_schedule` next has something to do (None: never, until a
        market's status or close time changes)."""
        version, due = self._schedule_due
        if version != self.lifecycle_version:
            times = [
                m.defn.close_ns if m.defn.status in OPEN else m.defn.open_ns
                for m in self._markets.values()
                if m.defn.status in OPEN or m.defn.status is MarketStatus.INITIALIZED
            ]
            due = min(times) if times else None
            self._schedule_due = (self.lifecycle_version, due)
        return due

    def apply_schedule_if_due(self, now_ns: int) -> list[str]:
        """:meth:`apply_schedule` when something is due by ``now_ns`` (O(1) otherwise)."""
        due = self.next_schedule_ns()
        return self.apply_schedule(now_ns) if due is not None and due <= now_ns else []

    def apply_schedule(self, now_ns: int) -> list[str]:
        """Applies the time-based transitions due at ``now_ns`` (additive to Contract 1).

        ``initialized`` markets whose open time has come become ``active`` (Kalshi sends no
        event for this), and open markets whose close time has passed close (see
        :meth:`close_market`). The server may call this on every tick.

        Returns:
            The tickers whose status changed, in the order the markets were added.
        """
        changed = []
        for ticker, mkt in self._markets.items():
            defn = mkt.defn
            if defn.status in OPEN and defn.close_ns <= now_ns:
                self.close_market(ticker, now_ns)
                changed.append(ticker)
            elif defn.status is MarketStatus.INITIALIZED and defn.open_ns <= now_ns:
                defn.status = MarketStatus.ACTIVE
                self.lifecycle_version += 1
                changed.append(ticker)
        return changed

    def determine_market(self, ticker: str, result: str, now_ns: int) -> None:
        """Sets the result (``yes`` or ``no``), closing the market first if it is open.

        Raises:
            ValueError: if ``result`` is neither ``yes`` nor ``no``.
            IllegalTransition: if the market is already determined or finalized.
        """
        if result not in _RESULTS:
            raise ValueError(f"result: must be 'yes' or 'no', got {result!r}")
        defn = self._market(ticker).defn
        if defn.status in OPEN:
            self.close_market(ticker, now_ns)
        if defn.status is not MarketStatus.CLOSED:
            raise IllegalTransition(ticker, defn.status, MarketStatus.DETERMINED)
        defn.status = MarketStatus.DETERMINED
        self.lifecycle_version += 1
        defn.result = result
        self._out.append(MarketLifecycle(ticker, "determined", now_ns, result=result))

    def settle_market(self, ticker: str, now_ns: int) -> None:
        """Pays $1 per winning net contract, writes settlement rows, finalizes the market.

        Raises:
            IllegalTransition: unless the market is determined.
        """
        mkt = self._market(ticker)
        defn = mkt.defn
        if defn.status is not MarketStatus.DETERMINED:
            raise IllegalTransition(ticker, defn.status, MarketStatus.FINALIZED)
        for account in mkt.holders.values():
            self._settle_account(mkt, account, now_ns)
        mkt.open_interest = 0
        defn.status = MarketStatus.FINALIZED
        self.lifecycle_version += 1
        defn.settlement_ns = now_ns
        self._out.append(MarketLifecycle(ticker, "settled", now_ns, result=defn.result))

    def update_close_time(self, ticker: str, close_ns: int, now_ns: int) -> None:
        """Moves a market's close time, reopening a closed market or closing an open one.

        Raises:
            IllegalTransition: if the market is determined or finalized.
        """
        mkt = self._market(ticker)
        defn = mkt.defn
        if defn.status not in OPEN and defn.status is not MarketStatus.CLOSED:
            raise IllegalTransition(ticker, defn.status, "close_date_updated")
        defn.close_ns = close_ns
        self.lifecycle_version += 1
        self._out.append(MarketLifecycle(ticker, "close_date_updated", now_ns, close_ns=close_ns))
        if defn.status is MarketStatus.CLOSED and close_ns > now_ns:
            defn.status = MarketStatus.ACTIVE
            self.lifecycle_version += 1
            self._out.append(MarketLifecycle(ticker, "activated", now_ns, is_deactivated=False))
        elif defn.status in OPEN and close_ns <= now_ns:
            self.close_market(ticker, now_ns)

    # ------------------------------------------------------------------ order groups

    def create_order_group(
        self, user_id: str, contracts_limit: Qty, now_ns: int = 0, *, subaccount: int = 0
    ) -> str:
        """Creates an order group of the user's ``subaccount`` and returns its id.

        Only orders of that subaccount can join it.

        Raises:
            Rejection: 400 ``invalid_parameters`` if the limit is outside 1–1,000,000;
                404 ``not_found`` for a subaccount not created.
        """
        self._account(user_id, subaccount)
        _check_group_limit(contracts_limit)
        self._group_seq += 1
        group_id = f"00000003-0000-4000-8000-{self._group_seq:012x}"
        self._groups[group_id] = Group(group_id, user_id, contracts_limit, subaccount)
        self._group_event(user_id, group_id, "created", contracts_limit, now_ns)
        return group_id

    def order_group(self, user_id: str, group_id: str, subaccount: int | None = None) -> OrderGroup:
        """A snapshot of one of the user's order groups (``order_ids``: its resting orders).

        Raises:
            Rejection: 404 ``not_found`` (also for a group of another subaccount than a
                given ``subaccount``).
        """
        return _group_snapshot(self._own_group(user_id, group_id, subaccount))

    def order_groups_of(self, user_id: str, subaccount: int | None = None) -> Sequence[OrderGroup]:
        """Snapshots of the user's order groups (of one subaccount, if given), oldest first."""
        return [
            _group_snapshot(g)
            for g in self._groups.values()
            if g.user_id == user_id and (subaccount is None or g.subaccount == subaccount)
        ]

    def trigger_order_group(
        self, user_id: str, group_id: str, now_ns: int, *, subaccount: int = 0
    ) -> None:
        """Triggers a group: cancels its resting orders and blocks it until reset."""
        self._trigger(self._own_group(user_id, group_id, subaccount), now_ns, user_id)

    def reset_order_group(
        self, user_id: str, group_id: str, now_ns: int, *, subaccount: int = 0
    ) -> None:
        """Clears a group's triggered state and rolling count."""
        group = self._own_group(user_id, group_id, subaccount)
        group.reset()
        self._group_event(user_id, group_id, "reset", group.limit, now_ns)

    def delete_order_group(
        self, user_id: str, group_id: str, now_ns: int, *, subaccount: int = 0
    ) -> None:
        """Cancels a group's resting orders and removes the group."""
        group = self._own_group(user_id, group_id, subaccount)
        self._cancel_group_orders(group, now_ns, user_id)
        del self._groups[group_id]
        self._group_event(user_id, group_id, "deleted", group.limit, now_ns)

    def set_order_group_limit(
        self,
        user_id: str,
        group_id: str,
        contracts_limit: Qty,
        now_ns: int,
        *,
        subaccount: int = 0,
    ) -> None:
        """Changes a group's limit; a limit below the rolling count triggers the group.

        Raises:
            Rejection: 404 ``not_found``; 400 ``invalid_parameters`` for a bad limit.
        """
        group = self._own_group(user_id, group_id, subaccount)
        _check_group_limit(contracts_limit)
        group.limit = contracts_limit
        self._group_event(user_id, group_id, "limit_updated", contracts_limit, now_ns)
        if not group.triggered and group.rolling_volume(now_ns) > contracts_limit:
            self._trigger(group, now_ns, user_id)

    def _own_group(self, user_id: str, group_id: str, subaccount: int | None) -> Group:
        group = self._groups.get(group_id)
        if (
            group is None
            or group.user_id != user_id
            or (subaccount is not None and group.subaccount != subaccount)
        ):
            raise Rejection(404, "not_found", f"order group {group_id} not found")
        return group

    def _group_event(
        self, user_id: str, group_id: str, event_type: str, limit: Qty, now_ns: int
    ) -> None:
        self._out.append(OrderGroupUpdate(user_id, group_id, event_type, limit, now_ns))

    def _settle_account(self, mkt: Market, account: Account, now_ns: int) -> None:
        defn = mkt.defn
        macct = account.markets[defn.ticker]
        position = macct.position
        macct.settled = True
        if not position:
            return
        yes_won = defn.result == "yes"
        won = position if yes_won else -position
        revenue = ONE_DOLLAR * won if won > 0 else 0
        row = Settlement(
            defn.ticker,
            defn.event_ticker,
            defn.result,
            position if position > 0 else 0,
            macct.cost if position > 0 else 0,
            -position if position < 0 else 0,
            macct.cost if position < 0 else 0,
            revenue,
            ONE_DOLLAR if yes_won else 0,
            0,
            now_ns,
        )
        account.settlements.append(row)
        account.cash += revenue
        macct.realized += revenue - macct.cost
        macct.position = 0
        macct.cost = 0
        macct.updated_ns = now_ns
        self._out.append(
            PositionUpdate(
                account.user_id, defn.ticker, position_of(macct), now_ns, account.subaccount
            )
        )


def _check_group_limit(limit: Qty) -> None:
    if not _MIN_GROUP_LIMIT <= limit <= _MAX_GROUP_LIMIT:
        raise Rejection(
            400,
            "invalid_parameters",
            f"contracts_limit must be between 1 and 1000000, got {format_count(limit)}",
        )


def _group_snapshot(group: Group) -> OrderGroup:
    return OrderGroup(group.group_id, group.limit, not group.triggered, tuple(group.resting))
