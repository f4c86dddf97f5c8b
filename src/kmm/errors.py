"""kmm's exceptions: one root, every error carries fields rather than just a message.

::

    KmmError
     ├── ConfigError                  a bad config file or override (exit status 2)
     ├── FixedPointError (ValueError) a malformed or over-precise dollar/count string
     ├── WireError (ValueError)       a malformed websocket frame or REST body
     ├── BookIntegrityError           a level would go negative, or a delta for an unknown book
     ├── IllegalTransition            an order lifecycle transition the table does not allow
     └── VenueError                   anything the venue answered, or failed to answer
          ├── AuthError                401: unknown key, bad signature, stale timestamp
          ├── RateLimited              429: the venue's token bucket is empty
          ├── Rejected                 4xx with Kalshi's code: the request was refused
          │    ├── ExchangePaused      trading (or the whole exchange) is paused
          │    └── MarketClosed        the market no longer accepts order operations
          └── UnknownOutcome           timeout, 5xx or disconnect: a write may or may not
                                       have taken effect; reconciliation settles it
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BookIntegrityError",
    "ConfigError",
    "ExchangePaused",
    "FixedPointError",
    "IllegalTransition",
    "KmmError",
    "MarketClosed",
    "RateLimited",
    "Rejected",
    "UnknownOutcome",
    "VenueError",
    "WireError",
]


class KmmError(Exception):
    """The root of every error kmm raises on purpose."""


class ConfigError(KmmError):
    """The configuration is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class FixedPointError(KmmError, ValueError):
    """A fixed-point string could not be converted exactly.

    Attributes:
        field: The name of the field that held the value.
        value: The offending value, as received.
        reason: Why it was refused.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason}, got {value!r}")


class WireError(KmmError, ValueError):
    """A frame or body from the venue does not have the shape the protocol promises.

    Attributes:
        msg_type: The message type, when known.
        reason: What was wrong, naming the field.
        field: The field (or check, such as ``crossed``) that was wrong, when known.
    """

    def __init__(self, msg_type: str | None, reason: str, *, field: str | None = None) -> None:
        self.msg_type = msg_type
        self.reason = reason
        self.field = field
        super().__init__(f"{msg_type or 'frame'}: {reason}")

    @property
    def kind(self) -> str:
        """What was refused, for counting: ``"<type>.<field>"``, e.g. ``"fill.count_fp"``.

        A band or level index is left out (``price_ranges[2].step`` counts as
        ``price_ranges``); ``"frame"`` stands for an unknown type, ``"shape"`` for a field.
        """
        field = (self.field or "shape").partition("[")[0]
        return f"{self.msg_type or 'frame'}.{field}"


class BookIntegrityError(KmmError):
    """Applying a message would leave a book in an impossible state.

    Attributes:
        ticker: The market.
        reason: What would have gone wrong.
    """

    def __init__(self, ticker: str, reason: str) -> None:
        self.ticker = ticker
        self.reason = reason
        super().__init__(f"{ticker}: {reason}")


class IllegalTransition(KmmError):
    """An order was asked to move between two states the lifecycle table does not connect.

    Attributes:
        order_key: The order's client order id (or exchange id).
        from_state: The state it was in.
        to_state: The state it was asked to enter.
    """

    def __init__(self, order_key: str, from_state: str, to_state: str) -> None:
        self.order_key = order_key
        self.from_state = from_state
        self.to_state = to_state
        super().__init__(f"{order_key}: illegal transition {from_state} -> {to_state}")


class VenueError(KmmError):
    """The venue answered with an error.

    Attributes:
        status: The HTTP status, or 0 for websocket errors.
        code: Kalshi's error code string (or the websocket error number as a string).
        message: Kalshi's message, if any.
    """

    def __init__(self, status: int, code: str, message: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")


class AuthError(VenueError):
    """The venue refused our credentials (401): key unknown, signature or timestamp bad."""


class RateLimited(VenueError):
    """The venue's token bucket for this request was empty (429)."""


class Rejected(VenueError):
    """The venue refused the request with one of Kalshi's error codes (4xx)."""


class ExchangePaused(Rejected):
    """Trading is paused: places and amends are refused; cancels may still go through."""


class MarketClosed(Rejected):
    """The market is closed, settled or inactive: order operations are refused."""


class UnknownOutcome(VenueError):
    """A request got no usable answer (timeout, 5xx, disconnect).

    For a write this means the order may or may not exist: it must be settled by the
    stream or a REST read, never assumed rejected.
    """
