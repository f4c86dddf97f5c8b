"""The decoder of a bot on one subaccount skips the account messages of the others.

A full-account key's connection carries every subaccount's ``fill``, ``user_order`` and
``market_position`` messages; the subaccount is ``subaccount`` (fill, position) or
``subaccount_number`` (order) in the payload, absent for the primary account.
"""

from __future__ import annotations

import pathlib
from typing import Any

import orjson
import pytest

from kmm.errors import WireError
from kmm.kalshi.wire import MarketPosition, UserOrder, WireDecoder
from kmm.types import Fill

DATA = pathlib.Path(__file__).parent.parent / "data" / "ws"
ACCOUNT_MESSAGES = [
    ("fill", "subaccount", Fill),
    ("user_order", "subaccount_number", UserOrder),
    ("market_position", "subaccount", MarketPosition),
]


def frame(name: str, key: str, subaccount: object) -> bytes:
    """The sample ``name`` with its subaccount field set (``None``: left out)."""
    obj: dict[str, Any] = orjson.loads((DATA / f"{name}.json").read_bytes())
    obj["msg"].pop(key, None)
    if subaccount is not None:
        obj["msg"][key] = subaccount
    return orjson.dumps(obj)


@pytest.mark.parametrize(("name", "key", "kind"), ACCOUNT_MESSAGES)
def test_a_message_of_the_decoders_subaccount_is_decoded(name: str, key: str, kind: type) -> None:
    decoder = WireDecoder(use_yes_price=True, subaccount=3)

    assert isinstance(decoder.decode(frame(name, key, 3)), kind)
    assert decoder.foreign_counts == {}


@pytest.mark.parametrize(("name", "key", "kind"), ACCOUNT_MESSAGES)
@pytest.mark.parametrize("other", [None, 0, 5])
def test_a_message_of_another_subaccount_is_counted_and_skipped(
    name: str, key: str, kind: type, other: int | None
) -> None:
    decoder = WireDecoder(use_yes_price=True, subaccount=3)

    assert decoder.decode(frame(name, key, other)) is None
    assert decoder.foreign_counts == {name: 1}


@pytest.mark.parametrize(("name", "key", "kind"), ACCOUNT_MESSAGES)
def test_the_primary_accounts_decoder_takes_messages_without_a_subaccount(
    name: str, key: str, kind: type
) -> None:
    decoder = WireDecoder(use_yes_price=True, subaccount=0)

    assert isinstance(decoder.decode(frame(name, key, None)), kind)
    assert decoder.decode(frame(name, key, 3)) is None


@pytest.mark.parametrize(("name", "key", "kind"), ACCOUNT_MESSAGES)
def test_a_decoder_for_no_subaccount_in_particular_takes_every_one(
    name: str, key: str, kind: type
) -> None:
    decoder = WireDecoder(use_yes_price=True)

    assert isinstance(decoder.decode(frame(name, key, 7)), kind)
    assert isinstance(decoder.decode(frame(name, key, None)), kind)


@pytest.mark.parametrize(("name", "key", "kind"), ACCOUNT_MESSAGES)
def test_a_subaccount_that_is_not_an_integer_is_a_malformed_frame(
    name: str, key: str, kind: type
) -> None:
    decoder = WireDecoder(use_yes_price=True, subaccount=3)

    with pytest.raises(WireError, match=key):
        decoder.decode(frame(name, key, "3"))
