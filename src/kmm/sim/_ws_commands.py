"""Parsing and validating the client's websocket commands, with Kalshi's error codes.

Theory of operation
-------------------
:func:`parse_command` turns one text frame into one typed command, or raises
:class:`WsCommandError` carrying the Kalshi error code (``kmm.kalshi.constants.WS_ERRORS``)
and the command ``id`` to echo. It checks everything that needs no subscription state, in
this order: the frame is a JSON object (else 1), ``id`` is a non-negative integer (else 1;
0 means "no id"), ``cmd`` is known (else 5), ``params`` is present where required (else 2),
then the command's own parameters: a field of the wrong JSON type is 1, a missing channel
list 3, missing ``sids`` 4, an unknown channel 8, conflicting or malformed market filters 11,
a bad ``sid``/``sids`` for ``update_subscription`` 12, an unknown action 13, a missing market
filter 14, a missing action 15 and an unknown market 16 (naming it). What depends on the
connection's subscriptions (unknown ``sid`` 7, an action the channel does not support 13)
is the hub's to check.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import orjson

from kmm.errors import VenueError
from kmm.kalshi.constants import WS_ERRORS

__all__ = [
    "CHANNELS",
    "MARKET_CHANNELS",
    "SEQUENCED_CHANNELS",
    "Command",
    "ListSubscriptions",
    "Subscribe",
    "Unsubscribe",
    "UpdateSubscription",
    "WsCommandError",
    "parse_command",
]

MARKET_CHANNELS: Final = frozenset(
    {"orderbook_delta", "ticker", "trade", "fill", "market_positions", "user_orders"},
)
"""Channels filtered by market, which support ``add_markets`` / ``delete_markets``."""
SEQUENCED_CHANNELS: Final = frozenset({"orderbook_delta", "order_group_updates"})
"""Channels whose messages carry ``seq``."""
CHANNELS: Final = MARKET_CHANNELS | {
    "market_lifecycle_v2",
    "order_group_updates",
    # Accepted, but the sim has no RFQs and no multivariate markets, so they stay silent
    "communications",
    "multivariate_market_lifecycle",
}
"""Every channel ``subscribe`` accepts."""
ACTIONS: Final = frozenset({"add_markets", "delete_markets", "get_snapshot"})

_FLAGS: Final = ("use_yes_price", "send_initial_snapshot", "skip_ticker_ack")


class WsCommandError(VenueError):
    """A command the hub answers with a websocket ``error`` message.

    Attributes:
        cmd_id: The command's ``id`` to echo (``None`` when absent, zero or unreadable).
        ws_code: Kalshi's websocket error number (a key of ``WS_ERRORS``).
        market_ticker: The market the error is about, if any.
    """

    def __init__(self, cmd_id: int | None, ws_code: int, market_ticker: str | None = None) -> None:
        super().__init__(0, str(ws_code), WS_ERRORS[ws_code])
        self.cmd_id = cmd_id
        self.ws_code = ws_code
        self.market_ticker = market_ticker


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``subscribe``: one subscription per channel.

    ``tickers`` is ``None`` for all markets; ``market_id(s)`` were already turned into tickers.
    """

    id: int | None
    channels: tuple[str, ...]
    tickers: tuple[str, ...] | None
    use_yes_price: bool = False
    send_initial_snapshot: bool = False
    skip_ticker_ack: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``unsubscribe``: end each of ``sids``."""

    id: int | None
    sids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UpdateSubscription:
    """``update_subscription`` with ``add_markets``, ``delete_markets`` or ``get_snapshot``."""

    id: int | None
    sid: int
    action: str
    tickers: tuple[str, ...]
    send_initial_snapshot: bool = False


@dataclass(frozen=True, slots=True)
class ListSubscriptions:
    """``list_subscriptions``."""

    id: int | None


Command: TypeAlias = Subscribe | Unsubscribe | UpdateSubscription | ListSubscriptions


def parse_command(
    frame: str | bytes, markets: Container[str], market_ids: Mapping[str, str]
) -> Command:
    """Parses and validates one command frame.

    Args:
        frame: The text frame as received.
        markets: The known market tickers (unknown ones are error 16).
        market_ids: Market UUID → ticker, for ``market_id(s)`` on the ``ticker`` channel.

    Returns:
        The command.

    Raises:
        WsCommandError: with the code Kalshi answers (see the module docstring).
    """
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise WsCommandError(None, 1) from None
    if type(obj) is not dict:
        raise WsCommandError(None, 1)
    cmd_id = _command_id(obj.get("id"))
    cmd = obj.get("cmd")
    if cmd == "list_subscriptions":
        return ListSubscriptions(cmd_id)
    parser = _PARSERS.get(cmd) if type(cmd) is str else None
    if parser is None:
        raise WsCommandError(cmd_id, 5)
    params = obj.get("params")
    if params is None:
        raise WsCommandError(cmd_id, 2)
    if type(params) is not dict:
        raise WsCommandError(cmd_id, 1)
    return parser(cmd_id, params, markets, market_ids)


# --------------------------------------------------------------------------- field readers


def _command_id(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise WsCommandError(None, 1)
    return value or None


def _flag(cmd_id: int | None, params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if type(value) is not bool:
        raise WsCommandError(cmd_id, 1)
    return value


def _str_list(cmd_id: int | None, value: Any) -> list[str]:
    if type(value) is not list or any(type(item) is not str for item in value):
        raise WsCommandError(cmd_id, 1)
    return value


def _int_list(cmd_id: int | None, value: Any) -> list[int]:
    if type(value) is not list or any(type(item) is not int for item in value):
        raise WsCommandError(cmd_id, 1)
    return value


def _one_of(cmd_id: int | None, params: dict[str, Any], names: tuple[str, ...]) -> str | None:
    """The single market filter key present, or None; two of them is error 11."""
    present = [name for name in names if params.get(name) is not None]
    if len(present) > 1:
        raise WsCommandError(cmd_id, 11)
    return present[0] if present else None


def _tickers(
    cmd_id: int | None, params: dict[str, Any], markets: Container[str]
) -> tuple[str, ...] | None:
    """``market_ticker`` / ``market_tickers`` as unique known tickers in the order given."""
    key = _one_of(cmd_id, params, ("market_ticker", "market_tickers"))
    if key is None:
        return None
    value = params[key]
    if key == "market_ticker":
        if type(value) is not str:
            raise WsCommandError(cmd_id, 1)
        value = [value]
    names = _str_list(cmd_id, value)
    if not names:
        raise WsCommandError(cmd_id, 11)
    for name in names:
        if name not in markets:
            raise WsCommandError(cmd_id, 16, name)
    return tuple(dict.fromkeys(names))


def _ids_as_tickers(
    cmd_id: int | None, params: dict[str, Any], key: str, market_ids: Mapping[str, str]
) -> tuple[str, ...]:
    value = params[key]
    ids = [value] if key == "market_id" and type(value) is str else _str_list(cmd_id, value)
    if not ids:
        raise WsCommandError(cmd_id, 11)
    tickers: list[str] = []
    for market_uuid in ids:
        found = market_ids.get(market_uuid)
        if found is None:
            raise WsCommandError(cmd_id, 16)
        tickers.append(found)
    return tuple(dict.fromkeys(tickers))


# --------------------------------------------------------------------------- commands


def _subscribe(
    cmd_id: int | None,
    params: dict[str, Any],
    markets: Container[str],
    market_ids: Mapping[str, str],
) -> Subscribe:
    """``{"id":2,"cmd":"subscribe","params":{"channels":["orderbook_delta","trade"],
    "market_tickers":["A","B"],"use_yes_price":true}}``
    """
    channels = params.get("channels")
    if channels is None or channels == []:
        raise WsCommandError(cmd_id, 3)
    names = tuple(dict.fromkeys(_str_list(cmd_id, channels)))
    if any(name not in CHANNELS for name in names):
        raise WsCommandError(cmd_id, 8)
    flags = [_flag(cmd_id, params, name) for name in _FLAGS]
    tickers = _subscribe_markets(cmd_id, params, names, markets, market_ids)
    if tickers is None and "orderbook_delta" in names:
        raise WsCommandError(cmd_id, 14)
    return Subscribe(cmd_id, names, tickers, *flags)


def _subscribe_markets(
    cmd_id: int | None,
    params: dict[str, Any],
    channels: tuple[str, ...],
    markets: Container[str],
    market_ids: Mapping[str, str],
) -> tuple[str, ...] | None:
    key = _one_of(cmd_id, params, ("market_ticker", "market_tickers", "market_id", "market_ids"))
    if key is None or key.startswith("market_ticker"):
        return _tickers(cmd_id, params, markets)
    if any(channel != "ticker" for channel in channels):
        raise WsCommandError(cmd_id, 11)
    return _ids_as_tickers(cmd_id, params, key, market_ids)


def _unsubscribe(
    cmd_id: int | None,
    params: dict[str, Any],
    markets: Container[str],
    market_ids: Mapping[str, str],
) -> Unsubscribe:
    """``{"id":124,"cmd":"unsubscribe","params":{"sids":[1,2]}}``"""
    sids = params.get("sids")
    if sids is None or sids == []:
        raise WsCommandError(cmd_id, 4)
    return Unsubscribe(cmd_id, tuple(dict.fromkeys(_int_list(cmd_id, sids))))


def _update(
    cmd_id: int | None,
    params: dict[str, Any],
    markets: Container[str],
    market_ids: Mapping[str, str],
) -> UpdateSubscription:
    """``{"id":124,"cmd":"update_subscription","params":{"sids":[456],
    "market_tickers":["NEW-1"],"action":"add_markets"}}`` (or ``"sid":456``)
    """
    action = params.get("action")
    if action is None:
        raise WsCommandError(cmd_id, 15)
    if type(action) is not str:
        raise WsCommandError(cmd_id, 1)
    if action not in ACTIONS:
        raise WsCommandError(cmd_id, 13)
    sid = _single_sid(cmd_id, params)
    if params.get("market_id") is not None or params.get("market_ids") is not None:
        raise WsCommandError(cmd_id, 11)
    tickers = _tickers(cmd_id, params, markets)
    if tickers is None:
        raise WsCommandError(cmd_id, 14)
    snapshot = _flag(cmd_id, params, "send_initial_snapshot")
    return UpdateSubscription(cmd_id, sid, action, tickers, snapshot)


def _single_sid(cmd_id: int | None, params: dict[str, Any]) -> int:
    sid, sids = params.get("sid"), params.get("sids")
    if sid is not None and sids is not None:
        raise WsCommandError(cmd_id, 12)
    if sid is not None:
        if type(sid) is not int:
            raise WsCommandError(cmd_id, 1)
        return sid
    if sids is None:
        raise WsCommandError(cmd_id, 12)
    listed = _int_list(cmd_id, sids)
    if len(listed) != 1:
        raise WsCommandError(cmd_id, 12)
    return listed[0]


_Parser: TypeAlias = Callable[
    [int | None, dict[str, Any], Container[str], Mapping[str, str]], Command
]
_PARSERS: Final[dict[str, _Parser]] = {
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "update_subscription": _update,
}
