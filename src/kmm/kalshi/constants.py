"""Kalshi venue facts as data: hosts, paths, channels, token costs, tiers, error codes.

Sources: Kalshi's documentation, https://docs.kalshi.com (rate limits:
``/getting_started/rate_limits``; non-default costs: ``GET /account/endpoint_costs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "API_PREFIX",
    "CANCEL_COST",
    "CREATE_COST",
    "DEFAULT_COST",
    "ENV_HOSTS",
    "PRIVATE_CHANNELS",
    "PUBLIC_CHANNELS",
    "TERMINAL_WS_ERRORS",
    "TIERS",
    "WS_ERRORS",
    "WS_PATH",
    "EnvHosts",
    "TierBudget",
]

API_PREFIX: Final = "/trade-api/v2"
WS_PATH: Final = "/trade-api/ws/v2"


@dataclass(frozen=True, slots=True)
class EnvHosts:
    """Base URLs of one environment."""

    rest: str
    ws: str


ENV_HOSTS: Final[dict[str, EnvHosts]] = {
    "prod": EnvHosts(
        rest="https://external-api.kalshi.com" + API_PREFIX,
        ws="wss://external-api-ws.kalshi.com" + WS_PATH,
    ),
    "demo": EnvHosts(
        rest="https://external-api.demo.kalshi.co" + API_PREFIX,
        ws="wss://external-api-ws.demo.kalshi.co" + WS_PATH,
    ),
    "sim": EnvHosts(
        rest="http://127.0.0.1:8080" + API_PREFIX,
        ws="ws://127.0.0.1:8080" + WS_PATH,
    ),
}

# Paths (relative to API_PREFIX)
ORDERS_V2: Final = "/portfolio/events/orders"
ORDERS_V2_BATCHED: Final = "/portfolio/events/orders/batched"
ORDERS_READ: Final = "/portfolio/orders"
FILLS: Final = "/portfolio/fills"
POSITIONS: Final = "/portfolio/positions"
BALANCE: Final = "/portfolio/balance"
ACCOUNT_LIMITS: Final = "/account/limits"
EXCHANGE_STATUS: Final = "/exchange/status"
MARKETS: Final = "/markets"

# Token costs (GET /account/endpoint_costs): batches are billed per item (a batch create of n
# orders costs n * CREATE_COST, a batch cancel n * CANCEL_COST) and must fit whole
DEFAULT_COST: Final = 10
CREATE_COST: Final = 10
AMEND_COST: Final = 10
DECREASE_COST: Final = 10
CANCEL_COST: Final = 2
GET_ORDER_COST: Final = 2


@dataclass(frozen=True, slots=True)
class TierBudget:
    """Token budgets of one usage tier, in tokens per second and bucket capacity."""

    read_per_s: int
    write_per_s: int
    read_capacity: int
    write_capacity: int


# Capacity: Basic/Advanced Read and all Write above Basic hold 2 s; the rest hold 1 s.
TIERS: Final[dict[str, TierBudget]] = {
    "basic": TierBudget(200, 100, 400, 100),
    "advanced": TierBudget(300, 300, 600, 600),
    "expert": TierBudget(600, 600, 600, 1200),
    "premier": TierBudget(1000, 1000, 1000, 2000),
    "paragon": TierBudget(2000, 2000, 2000, 4000),
    "prime": TierBudget(4000, 4000, 4000, 8000),
    "prestige": TierBudget(10000, 8000, 10000, 16000),
}

PUBLIC_CHANNELS: Final = ("ticker", "trade", "market_lifecycle_v2")
PRIVATE_CHANNELS: Final = (
    "orderbook_delta",
    "fill",
    "market_positions",
    "user_orders",
    "order_group_updates",
)

WS_ERRORS: Final[dict[int, str]] = {
    1: "Unable to process message",
    2: "Params required",
    3: "Channels required",
    4: "Subscription IDs required",
    5: "Unknown command",
    6: "Already subscribed",
    7: "Unknown subscription ID",
    8: "Unknown channel name",
    9: "Authentication required",
    10: "Channel error",
    11: "Invalid parameter",
    12: "Exactly one subscription ID is required",
    13: "Unsupported action",
    14: "Market Ticker required",
    15: "Action required",
    16: "Market not found",
    17: "Internal error",
    18: "Command timeout",
    19: "shard_factor must be > 0",
    20: "shard_factor is required when shard_key is set",
    21: "shard_key must be >= 0 and < shard_factor",
    22: "shard_factor must be <= 100",
    23: "Match IDs required",
    24: "Index IDs required",
    25: "Subscription buffer overflow",
    26: "Subscription market limit exceeded",
    27: "Too many requests",
    28: "Underlying tickers required",
}
TERMINAL_WS_ERRORS: Final = frozenset({10, 17, 25})
