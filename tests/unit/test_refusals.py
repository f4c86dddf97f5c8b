"""The hold on a refused price: doubling, per side, cleared by an accepted order."""

from __future__ import annotations

import pytest

from kmm.execution.refusals import RefusalCooldown
from kmm.types import BookSide

BID, ASK = BookSide.BID, BookSide.ASK
MS = 1_000_000


def test_a_refused_price_is_held_off_and_the_hold_doubles_on_each_refusal() -> None:
    holds = RefusalCooldown(base_ns=500 * MS, max_ns=1_500 * MS)

    assert holds.refused("T", BID, 4500, 0) == 500 * MS
    assert holds.holds("T", BID, 4500, 499 * MS)
    assert not holds.holds("T", BID, 4500, 500 * MS)
    assert holds.refused("T", BID, 4500, 500 * MS) == 1_500 * MS
    assert holds.refused("T", BID, 4500, 1_500 * MS) == 3_000 * MS  # capped at max_ns


def test_another_price_another_side_or_an_accepted_order_is_not_held() -> None:
    holds = RefusalCooldown(base_ns=500 * MS)
    holds.refused("T", BID, 4500, 0)

    assert not holds.holds("T", BID, 4400, 1)
    assert not holds.holds("T", ASK, 4500, 1)
    assert not holds.holds("U", BID, 4500, 1)
    holds.accepted("T", BID)
    assert not holds.holds("T", BID, 4500, 1)
    assert len(holds) == 0


def test_a_new_price_restarts_the_doubling() -> None:
    holds = RefusalCooldown(base_ns=500 * MS)
    holds.refused("T", BID, 4500, 0)
    holds.refused("T", BID, 4500, 0)

    assert holds.refused("T", BID, 4400, 0) == 500 * MS


def test_next_expiry_is_the_earliest_hold_still_in_force() -> None:
    holds = RefusalCooldown(base_ns=500 * MS)
    assert holds.next_expiry_ns(0) is None
    holds.refused("T", BID, 4500, 0)
    holds.refused("U", ASK, 5500, 100 * MS)

    assert holds.next_expiry_ns(0) == 500 * MS
    assert holds.next_expiry_ns(550 * MS) == 600 * MS
    assert holds.next_expiry_ns(600 * MS) is None


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="base_ns"):
        RefusalCooldown(base_ns=0)
    with pytest.raises(ValueError, match="base_ns"):
        RefusalCooldown(base_ns=2, max_ns=1)
