"""kmm's configuration: frozen pydantic models, a YAML file and ``KMM__SECTION__FIELD`` overrides.

Theory of operation
-------------------
:func:`load_config` builds one :class:`KmmConfig` in three steps, gathering every problem it
finds before it gives up, so that a bad file is fixed in one pass:

1. **Read.** The YAML file (optional) is parsed by a safe loader that reads every decimal
   number as a :class:`~decimal.Decimal` straight from its source text (``0.1`` contracts never
   passes through ``float``) and refuses duplicate keys. The top level must be a mapping of
   sections; a section left empty (``strategy:`` with every field commented out) means "all
   defaults".
2. **Override.** Each environment variable ``KMM__SECTION__FIELD`` sets ``section.field``. Its
   value is read as a YAML scalar or flow sequence (``KMM__MARKETS__TICKERS=[A,B]``), except for
   text and path fields, which take the raw string. A variable naming an unknown section or
   field is a problem that names the variable.
3. **Validate.** Pydantic validates the merged mapping. Each of its errors becomes one line,
   ``section.field: reason, got <value>`` (``strategy.gamma: must be > 0, got -1``), with
   ``(from KMM__...)`` appended when the value came from the environment.

The problems are raised together as one :class:`~kmm.errors.ConfigError`; the CLI prints one
per line and exits with status 2.

Units are in the field names: ``_s`` seconds, ``_ms`` milliseconds, ``_cents`` cents of YES price
(steps of 0.01¢ = $0.0001), ``_contracts`` contracts (steps of 0.01), ``_dollars`` dollars (steps
of $0.0001). Prices, counts and money are ``Decimal`` in the config and are converted exactly to
kmm's integer units (:mod:`kmm.types`) by properties on the models (``StrategyConfig.base_qty``,
``RiskConfig.max_daily_loss`` ...). Floats appear only for the strategy's maths and durations.

Secrets are held by reference only: ``auth`` names a key file or an environment variable, and a
configuration that holds a PEM itself is refused without echoing it.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args, get_origin
from urllib.parse import SplitResult, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from kmm.errors import ConfigError
from kmm.kalshi.constants import API_PREFIX, ENV_HOSTS, WS_PATH
from kmm.types import MONEY_SCALE, ONE_CENT, QTY_SCALE, Money, Price, Qty

__all__ = [
    "ENV_PREFIX",
    "PORT_MAX",
    "AuthConfig",
    "BacktestConfig",
    "DiscoveryConfig",
    "ExecutionConfig",
    "KmmConfig",
    "LogLevel",
    "MarketOverride",
    "MarketsConfig",
    "OpsConfig",
    "RecordConfig",
    "RiskConfig",
    "Scenario",
    "SimConfig",
    "StrategyConfig",
    "TierName",
    "VenueConfig",
    "VolatilityConfig",
    "load_config",
    "mask_key_id",
    "masked_dump",
    "parse_duration",
    "parse_port",
    "parse_tickers",
    "render_example",
    "rest_url_for",
    "validate_override",
    "with_fields",
    "ws_url_for",
]

ENV_PREFIX: Final = "KMM__"
"""Environment variables ``KMM__SECTION__FIELD`` override ``section.field``."""

_PEM_MARKER: Final = "PRIVATE KEY"
_NS_PER_S: Final = 1_000_000_000
_NS_PER_MS: Final = 1_000_000
_MAX_SHOWN: Final = 80
PORT_MAX: Final = 65535
"""The highest TCP port; 0 (the lowest accepted) asks the system for a free one."""

TierName = Literal["basic", "advanced", "expert", "premier", "paragon", "prime", "prestige"]
"""The usage tiers of :data:`kmm.kalshi.constants.TIERS` (a test keeps the two equal)."""
Scenario = Literal["calm", "trending", "jump", "thin", "near_close", "settlement", "mixed"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
QueueModelName = Literal["conservative", "probabilistic"]
ExitStyleName = Literal["take", "passive"]


# --------------------------------------------------------------------------- field types


def _refuse_bool(value: object) -> object:
    # pydantic's lax mode would read `gamma: yes` as 1.0; a boolean is never a number here.
    if isinstance(value, bool):
        raise PydanticCustomError("kmm_bool_number", "must be a number, not a boolean")
    return value


def _decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _steps(places: int, unit: str) -> AfterValidator:
    def check(value: Decimal) -> Decimal:
        if _decimal_places(value) > places:
            raise PydanticCustomError(
                "kmm_precision", "must be in steps of {unit}", {"unit": unit, "places": places}
            )
        return value

    return AfterValidator(check)


_Real = Annotated[float, BeforeValidator(_refuse_bool)]
_Whole = Annotated[int, BeforeValidator(_refuse_bool)]
_Contracts = Annotated[Decimal, _steps(2, "0.01 contract")]
_Cents = Annotated[Decimal, _steps(2, "0.01¢ ($0.0001)")]
_Dollars = Annotated[Decimal, _steps(4, "$0.0001")]


def _qty(contracts: Decimal) -> Qty:
    return int(contracts * QTY_SCALE)


def _price(cents: Decimal) -> Price:
    return int(cents * ONE_CENT)


def _money(dollars: Decimal) -> Money:
    return int(dollars * MONEY_SCALE)


def _optional_money(dollars: Decimal | None) -> Money | None:
    return None if dollars is None else _money(dollars)


def _ns(seconds: float) -> int:
    return round(seconds * _NS_PER_S)


def _not_below(info: ValidationInfo, value: Any, other: str, strict: bool = False) -> None:
    """Raises a cross-field error unless ``value`` >= (or >) the already-validated ``other``."""
    bound = info.data.get(other)
    if bound is None or value > bound or (value == bound and not strict):
        return
    op = ">" if strict else ">="
    raise PydanticCustomError(
        "kmm_order",
        "must be {op} {other} ({bound})",
        {"op": op, "other": other, "bound": _show(bound)},
    )


def _not_above(info: ValidationInfo, value: Any, other: str) -> None:
    """Raises a cross-field error unless ``value`` <= the already-validated ``other``."""
    bound = info.data.get(other)
    if bound is not None and value > bound:
        raise PydanticCustomError(
            "kmm_order", "must be <= {other} ({bound})", {"other": other, "bound": _show(bound)}
        )


def _find_pem(value: object, path: tuple[str, ...]) -> tuple[str, ...] | None:
    """Returns the path of the first string under ``value`` that holds a private key."""
    if isinstance(value, str):
        return path if _PEM_MARKER in value else None
    if isinstance(value, Mapping):
        items: list[tuple[str, object]] = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        items = [(f"[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for key, item in items:
        found = _find_pem(item, (*path, key))
        if found is not None:
            return found
    return None


class _Section(BaseModel):
    """Common settings: frozen, unknown keys refused, defaults validated, no NaN or infinity."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,
        coerce_numbers_to_str=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_private_keys(cls, data: Any) -> Any:
        found = _find_pem(data, ())
        if found is not None:
            raise PydanticCustomError(
                "kmm_private_key",
                "holds a private key; keep the PEM in a file (auth.private_key_path) or an "
                "environment variable (auth.private_key_env), never in the configuration",
                {"kmm_field": ".".join(found).replace(".[", "[")},
            )
        return data


# --------------------------------------------------------------------------- sections


class VenueConfig(_Section):
    """Which exchange kmm talks to, and how."""

    env: Literal["sim", "demo", "prod"] = Field(
        default="sim",
        description="The exchange: sim (the local Kalshi-compatible exchange), demo (Kalshi's "
        "demo, play money) or prod (real money).",
    )
    rest_url: str | None = Field(
        default=None,
        description="REST base URL, ending in /trade-api/v2. Null takes the environment's host "
        "(from kmm.kalshi.constants), or ws_url's host when only ws_url is set.",
    )
    ws_url: str | None = Field(
        default=None,
        description="Websocket URL, ending in /trade-api/ws/v2. Null takes rest_url's host when "
        "rest_url is set (http://H:P/trade-api/v2 gives ws://H:P/trade-api/ws/v2), else the "
        "environment's host.",
    )
    allow_different_hosts: bool = Field(
        default=False,
        description="Allow rest_url and ws_url to name different hosts. Without it kmm refuses "
        "to start when they do (it would trade on one venue while reading another's books); "
        "Kalshi's own host pairs (external-api and external-api-ws) need no override.",
    )
    request_timeout_s: _Real = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Timeout of one REST request, in seconds. An order write that times out is "
        "treated as unknown and reconciled, never as rejected.",
    )
    reconnect_initial_s: _Real = Field(
        default=0.5, gt=0, description="First delay before reconnecting the websocket, in seconds."
    )
    reconnect_max_s: _Real = Field(
        default=30.0,
        gt=0,
        description="Longest delay between websocket reconnect attempts, in seconds (the delay "
        "doubles, with jitter, up to this).",
    )
    subaccount: _Whole = Field(
        default=0,
        ge=0,
        le=63,
        description="Kalshi subaccount the bot trades in (0 is the primary account, 1-63 "
        "numbered subaccounts): sent on every order write and on the orders, fills, positions "
        "and balance reads, and account websocket messages of other subaccounts are ignored. "
        "The in-process sim creates it and funds it with half the primary account's cash.",
    )
    live: bool = Field(
        default=False,
        description="Must be true for kmm to send orders to prod (a guard against trading real "
        "money by accident). Ignored for sim and demo.",
    )

    @field_validator("rest_url")
    @classmethod
    def _check_rest_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("http://", "https://"), API_PREFIX)

    @field_validator("ws_url")
    @classmethod
    def _check_ws_url(cls, value: str | None) -> str | None:
        return _check_url(value, ("ws://", "wss://"), WS_PATH)

    @model_validator(mode="after")
    def _check_same_host(self) -> VenueConfig:
        if self.rest_url is None or self.ws_url is None or self.allow_different_hosts:
            return self
        rest, ws = _host(self.rest_url), _host(self.ws_url)
        if rest != ws and (rest, ws) not in _KALSHI_HOST_PAIRS:
            raise PydanticCustomError(
                "kmm_hosts",
                "names host {ws} but venue.rest_url names {rest}: kmm would trade on one venue "
                "and read another's books (set venue.allow_different_hosts: true if that is "
                "intended)",
                {"kmm_field": "ws_url", "ws": ws, "rest": rest},
            )
        return self

    @field_validator("reconnect_max_s")
    @classmethod
    def _check_reconnect(cls, value: float, info: ValidationInfo) -> float:
        _not_below(info, value, "reconnect_initial_s")
        return value

    @property
    def trading_allowed(self) -> bool:
        """Whether orders may be sent: always for sim and demo, only with ``live`` for prod."""
        return self.env != "prod" or self.live

    @property
    def custom_urls(self) -> bool:
        """Whether ``rest_url`` or ``ws_url`` is set (the venue is not the environment's own)."""
        return self.rest_url is not None or self.ws_url is not None

    def rest_base(self) -> str:
        """The REST base URL: ``rest_url``; else derived from ``ws_url``; else the env's host."""
        if self.rest_url is not None:
            return self.rest_url
        if self.ws_url is not None:
            return rest_url_for(self.ws_url)
        return ENV_HOSTS[self.env].rest

    def ws_base(self) -> str:
        """The websocket URL: ``ws_url``; else derived from ``rest_url``; else the env's host."""
        if self.ws_url is not None:
            return self.ws_url
        if self.rest_url is not None:
            return ws_url_for(self.rest_url)
        return ENV_HOSTS[self.env].ws


_WS_SCHEMES: Final = {"http": "ws", "https": "wss"}
_REST_SCHEMES: Final = {ws: rest for rest, ws in _WS_SCHEMES.items()}
_DEFAULT_PORTS: Final = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _host(url: str) -> str:
    """``host:port`` of a URL, with the scheme's default port made explicit."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or _DEFAULT_PORTS[parts.scheme]}"


_KALSHI_HOST_PAIRS: Final = frozenset((_host(h.rest), _host(h.ws)) for h in ENV_HOSTS.values())
"""(REST host, websocket host) of each environment: Kalshi's prod and demo use two hosts."""


def ws_url_for(rest_url: str) -> str:
    """The websocket URL of the venue whose REST base URL is ``rest_url``.

    An environment's own REST URL gives that environment's websocket URL (Kalshi serves the
    websocket from a host of its own); any other gives the same host and port:
    ``https://H/trade-api/v2`` becomes ``wss://H/trade-api/ws/v2``.

    Args:
        rest_url: A REST base URL ending in ``/trade-api/v2`` (as validated by the config).
    """
    for hosts in ENV_HOSTS.values():
        if hosts.rest == rest_url:
            return hosts.ws
    parts = urlsplit(rest_url)
    return _swap(parts, _WS_SCHEMES[parts.scheme], API_PREFIX, WS_PATH)


def rest_url_for(ws_url: str) -> str:
    """The REST base URL of the venue whose websocket URL is ``ws_url`` (see :func:`ws_url_for`).

    Args:
        ws_url: A websocket URL ending in ``/trade-api/ws/v2`` (as validated by the config).
    """
    for hosts in ENV_HOSTS.values():
        if hosts.ws == ws_url:
            return hosts.rest
    parts = urlsplit(ws_url)
    return _swap(parts, _REST_SCHEMES[parts.scheme], WS_PATH, API_PREFIX)


def _swap(parts: SplitResult, scheme: str, suffix: str, replacement: str) -> str:
    root = parts.path.removesuffix(suffix)
    return f"{scheme}://{parts.netloc}{root}{replacement}"


def _check_url(value: str | None, schemes: tuple[str, ...], suffix: str) -> str | None:
    if value is None:
        return None
    if not value.startswith(schemes) or any(c.isspace() for c in value):
        raise PydanticCustomError(
            "kmm_url", "must be a URL starting with {schemes}", {"schemes": " or ".join(schemes)}
        )
    value = value.rstrip("/")
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = PORT_MAX + 1
    if not parts.hostname or (port is not None and not 1 <= port <= PORT_MAX):
        raise PydanticCustomError(
            "kmm_url", "must name a host and a port from 1 to {top}", {"top": PORT_MAX}
        )
    if parts.query or parts.fragment or not parts.path.endswith(suffix):
        raise PydanticCustomError("kmm_url", "must end with {suffix}", {"suffix": suffix})
    return value


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AuthConfig(_Section):
    """Credentials, by reference only: a key id, and a key file or an environment variable."""

    key_id: str | None = Field(
        default=None,
        repr=False,
        description="Kalshi API key id (a UUID). Not needed for sim. Shown masked in logs and in "
        "the resolved config of a run.",
    )
    private_key_path: Path | None = Field(
        default=None,
        description="Path of the PEM file holding the RSA private key (~ is expanded). Set this "
        "or private_key_env, not both.",
    )
    private_key_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding the PEM private key. Set this or "
        "private_key_path, not both.",
    )

    @field_validator("key_id")
    @classmethod
    def _check_key_id(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c.isspace() for c in value)):
            raise PydanticCustomError("kmm_key_id", "must be a non-empty id without spaces")
        return value

    @field_validator("private_key_env")
    @classmethod
    def _check_key_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not _ENV_NAME.fullmatch(value):
            raise PydanticCustomError("kmm_env_name", "must be an environment variable name")
        if info.data.get("private_key_path") is not None:
            raise PydanticCustomError(
                "kmm_exclusive", "set only one of private_key_path and private_key_env"
            )
        return value

    @property
    def complete(self) -> bool:
        """Whether a key id and a private key source are both configured."""
        has_source = self.private_key_path is not None or self.private_key_env is not None
        return self.key_id is not None and has_source

    def describe(self) -> str:
        """A one-line description safe to log, e.g. ``key a952…, private key from file k.pem``."""
        if self.key_id is None and self.private_key_path is None and self.private_key_env is None:
            return "no credentials"
        key = f"key {mask_key_id(self.key_id)}" if self.key_id else "no key id"
        if self.private_key_path is not None:
            return f"{key}, private key from file {self.private_key_path}"
        if self.private_key_env is not None:
            return f"{key}, private key from environment variable {self.private_key_env}"
        return f"{key}, no private key"

    def private_key_pem(self, environ: Mapping[str, str]) -> bytes:
        """Reads the PEM private key from the configured file or environment variable.

        Args:
            environ: The process environment (passed in, so tests need not touch os.environ).

        Returns:
            The PEM bytes, for ``cryptography``'s ``load_pem_private_key``.

        Raises:
            ConfigError: if no source is configured, the variable is unset, the file cannot be
                read, or what was found is not a PEM private key.
        """
        if self.private_key_env is not None:
            return _pem_from_env(self.private_key_env, environ)
        if self.private_key_path is not None:
            return _pem_from_file(self.private_key_path.expanduser())
        raise ConfigError(
            ["auth: no private key configured (set private_key_path or private_key_env)"]
        )


def _pem_from_env(name: str, environ: Mapping[str, str]) -> bytes:
    text = environ.get(name)
    if text is None:
        raise ConfigError([f"auth.private_key_env: environment variable {name} is not set"])
    if _PEM_MARKER not in text:
        raise ConfigError([f"auth.private_key_env: {name} does not hold a PEM private key"])
    return text.encode()


def _pem_from_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"auth.private_key_path: cannot read {path}: {exc.strerror}"]) from None
    if _PEM_MARKER.encode() not in data:
        raise ConfigError([f"auth.private_key_path: {path} does not hold a PEM private key"])
    return data


def mask_key_id(key_id: str | None) -> str | None:
    """Masks a key id for logs: its first 4 characters and an ellipsis (all masked if short)."""
    if key_id is None:
        return None
    return f"{key_id[:4]}…" if len(key_id) > 8 else "…"


def _split_list(value: object) -> object:
    # `KMM__MARKETS__TICKERS=A,B` and `tickers:` (empty) are natural ways to write a list.
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _check_names(values: tuple[str, ...]) -> tuple[str, ...]:
    problem = _names_problem(values)
    if problem is not None:
        raise PydanticCustomError("kmm_name", problem)
    return values


def _names_problem(values: Sequence[str]) -> str | None:
    """Why a list of Kalshi tickers is unusable (blank, spaced, lower case, repeated), or None."""
    seen: set[str] = set()
    for name in values:
        if not name or any(c.isspace() for c in name):
            return f"{name!r} is not a valid ticker"
        if name in seen:
            return f"{name} is listed twice"
        seen.add(name)
    lower = [name for name in values if name != name.upper()]
    if lower:
        return "tickers are upper case: " + ", ".join(lower)
    return None


def parse_tickers(text: str, source: str) -> tuple[str, ...]:
    """The tickers of a comma-separated list such as ``--markets KXA-26,KXB-26``.

    Args:
        text: The list as written.
        source: What to name in an error, e.g. ``--markets``.

    Raises:
        ConfigError: one line naming ``source`` when the list names no ticker, or a ticker is
            lower case, holds a space or is repeated.
    """
    tickers = tuple(part.strip() for part in text.split(","))
    if not any(tickers):
        raise ConfigError([f"{source}: names no ticker (leave it out to use markets in config)"])
    problem = _names_problem([t for t in tickers if t])
    if problem is not None:
        raise ConfigError([f"{source}: {problem}"])
    return tuple(t for t in tickers if t)


_DURATION_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``1.5``, ``30s``, ``10m``, ``1h`` or ``2d`` (the ``--duration`` forms).

    Raises:
        ValueError: naming the text when it is not such a duration or is not > 0.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a duration like 90, 30s, 10m or 1h: {text!r}")
    seconds = float(Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)])
    if not seconds > 0:
        raise ValueError(f"must be > 0, got {text!r}")
    return seconds


def parse_port(text: str) -> int:
    """A TCP port from 0 (any free port) to :data:`PORT_MAX`.

    Raises:
        ValueError: naming the text when it is not a whole number in that range.
    """
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"not a port number: {text!r}") from None
    if not 0 <= port <= PORT_MAX:
        raise ValueError(f"must be from 0 to {PORT_MAX}, got {port}")
    return port


_Names = Annotated[tuple[str, ...], BeforeValidator(_split_list), AfterValidator(_check_names)]


class MarketOverride(_Section):
    """One market's runtime settings (``markets.overrides``, the control API): unset fields
    keep the run's values."""

    enabled: bool = Field(
        default=True, description="false: never quote the market (its orders are cancelled)."
    )
    reduce_only: bool = Field(
        default=False, description="true: quote only the side that reduces the position."
    )
    gamma: _Real | None = Field(default=None, gt=0, description="strategy.gamma for it.")
    eta: _Real | None = Field(default=None, ge=0, description="strategy.eta for it.")
    order_size_contracts: _Contracts | None = Field(
        default=None, gt=0, description="strategy.order_size_contracts for it."
    )
    max_position_contracts: _Contracts | None = Field(
        default=None, ge=0, description="Its own position cap (never above the run's)."
    )
    edge_cents: _Cents | None = Field(
        default=None, ge=0, le=99, description="strategy.edge_cents for it."
    )
    min_spread_cents: _Cents | None = Field(
        default=None, ge=0, le=99, description="strategy.min_spread_cents for it."
    )
    max_spread_cents: _Cents | None = Field(
        default=None, ge=1, le=100, description="strategy.max_spread_cents for it."
    )
    improve_ticks: int | None = Field(
        default=None, ge=0, description="strategy.improve_ticks for it."
    )


def _check_override_names(value: dict[str, MarketOverride]) -> dict[str, MarketOverride]:
    problem = _names_problem(list(value))
    if problem is not None:
        raise ValueError(problem)
    return value


_Overrides = Annotated[dict[str, MarketOverride], AfterValidator(_check_override_names)]


class MarketsConfig(_Section):
    """Which markets to quote. All lists empty means every open market (up to max_markets)."""

    tickers: _Names = Field(
        default=(),
        description="Market tickers to quote, e.g. [KXHIGHNY-26AUG20-B85.5]. A list, or a "
        "comma-separated string in an environment override.",
    )
    series: _Names = Field(
        default=(), description="Series tickers: quote the open markets of these series."
    )
    events: _Names = Field(
        default=(), description="Event tickers: quote the open markets of these events."
    )
    max_markets: _Whole = Field(
        default=20,
        ge=1,
        description="The most markets quoted at once; selection stops at this many.",
    )
    mode: Literal["fixed", "discovery", "volatility"] = Field(
        default="fixed",
        description="fixed: quote the markets named above (or the first open ones); "
        "discovery: score every open market and quote the best discovery.top_n, each within "
        "its own position cap; volatility: track the best volatility.track_n and quote only "
        "in short sessions spawned by volatility events (the lists above must be empty in "
        "both).",
    )
    overrides: _Overrides = Field(
        default_factory=dict,
        description="Per-market runtime settings, by ticker, e.g. {KXA-26: {enabled: false}, "
        "KXB-26: {reduce_only: true, gamma: 0.8, min_spread_cents: 4}}: enabled, reduce_only, "
        "gamma, eta, order_size_contracts, max_position_contracts, edge_cents, "
        "min_spread_cents, max_spread_cents, improve_ticks. Reloaded by SIGHUP or the control "
        "API's /api/reload without a restart; a market not traded yet takes its override when "
        "it is added.",
    )

    @field_serializer("overrides")
    def _dump_overrides(self, overrides: dict[str, MarketOverride]) -> dict[str, Any]:
        """Only what each override changes (a dump loads back to the same config)."""
        return {t: o.model_dump(mode="json", exclude_defaults=True) for t, o in overrides.items()}

    def __hash__(self) -> int:  # the overrides are a dict: hashed as their items
        fields = tuple(
            tuple(sorted(value.items())) if isinstance(value, dict) else value
            for value in self.__dict__.values()
        )
        return hash(fields)

    @model_validator(mode="after")
    def _check_mode(self) -> MarketsConfig:
        if self.mode != "fixed" and (self.tickers or self.series or self.events):
            raise PydanticCustomError(
                "kmm_discovery_lists",
                f"{self.mode} mode chooses the markets itself: leave markets.tickers, series "
                "and events empty (or use mode fixed)",
                {"kmm_field": "mode"},
            )
        return self


def _window_rows(value: object) -> object:
    """``{category: [least, most]}`` as ``[[category, least, most], ...]`` (rows pass through)."""
    if isinstance(value, Mapping):
        return tuple((k, *v) if isinstance(v, list | tuple) else (k, v) for k, v in value.items())
    return value


_Windows = Annotated[tuple[tuple[str, _Real, _Real], ...], BeforeValidator(_window_rows)]


class DiscoveryConfig(_Section):
    """Discovery (``kmm scan``, ``kmm run --mode discovery``): filters, score weights and the
    risk budget of each chosen market. The extreme-price bands are the strategy's."""

    min_age_s: _Real = Field(
        default=60.0, ge=0, description="Skip markets created less than this long ago, in s."
    )
    close_windows: _Windows = Field(
        default=(("default", 3600.0, 60 * 86_400.0),),
        description="Per category, the allowed time to the close in seconds, as [category, "
        "least, most] rows or a mapping {category: [least, most]}; 'default' covers the "
        "categories not named, e.g. {default: [3600, 5184000], Sports: [3600, 604800]}.",
    )
    exclude_categories: _Names = Field(
        default=(), description="Categories never traded, e.g. [Sports]."
    )
    min_volume_24h_contracts: _Contracts = Field(
        default=Decimal(0), ge=0, description="Least 24 h volume of a candidate, in contracts."
    )
    min_recent_trades: _Whole = Field(
        default=0, ge=0, description="Least public trades of a candidate in the last recent_s."
    )
    recent_s: _Real = Field(
        default=600.0, gt=0, description="The window of recent trades and volume, in seconds."
    )
    max_spread_cents: _Cents = Field(
        default=Decimal(10), gt=0, le=100, description="Widest book spread of a candidate."
    )
    depth_levels: _Whole = Field(
        default=3, ge=1, description="Book levels per side counted as a candidate's depth."
    )
    min_depth_contracts: _Contracts = Field(
        default=Decimal(1), ge=0, description="Least depth on each side of a candidate."
    )
    weight_volume_24h: _Real = Field(default=0.30, description="Score weight of 24 h volume.")
    weight_recent_volume: _Real = Field(default=0.25, description="Score weight of recent volume.")
    weight_depth: _Real = Field(default=0.20, description="Score weight of book depth.")
    weight_spread: _Real = Field(
        default=-0.15, description="Score weight of the spread (negative: tighter is better)."
    )
    weight_time_penalty: _Real = Field(
        default=-0.10, description="Score weight of the time penalty (negative: closer is worse)."
    )
    penalty_full_days: _Real = Field(
        default=1.0, ge=0, description="The time penalty is 1 this many days or less from a close."
    )
    penalty_none_days: _Real = Field(
        default=60.0, gt=0, description="The time penalty is 0 this many days or more away."
    )
    top_n: _Whole = Field(default=10, ge=1, description="How many markets discovery chooses.")
    alpha: _Real = Field(
        default=2.0,
        gt=0,
        description="A chosen market's position cap is alpha·√(depth in contracts), within the "
        "caps below.",
    )
    per_market_cap_contracts: _Whole = Field(
        default=50, ge=1, description="Largest position cap of one chosen market."
    )
    category_cap_contracts: _Whole = Field(
        default=100, ge=1, description="Largest sum of the caps of one category."
    )
    global_cap_contracts: _Whole = Field(
        default=300, ge=1, description="Largest sum of the caps of every chosen market."
    )
    min_cap_contracts: _Whole = Field(
        default=1, ge=1, description="A market whose cap would be smaller is not chosen."
    )
    soft_haircut: _Real = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Factor on the cap of a market in a soft extreme-price band "
        "(strategy.soft_low_cents, soft_high_cents).",
    )
    long_dated_days: _Real = Field(
        default=30.0, ge=0, description="A market closing further away than this is long-dated."
    )
    long_dated_haircut: _Real = Field(
        default=0.7, ge=0, le=1, description="Factor on a long-dated market's cap."
    )
    rescore_s: _Real = Field(
        default=300.0,
        gt=0,
        description="kmm run --mode discovery scores the markets again this often, in seconds.",
    )
    incumbent_margin: _Real = Field(
        default=0.05,
        ge=0,
        description="At a rescoring, a market already traded ranks with this added to its "
        "score: a newcomer replaces it only when it scores better by more.",
    )

    @property
    def min_volume_24h(self) -> Qty:
        """``min_volume_24h_contracts`` in 0.01 contracts."""
        return _qty(self.min_volume_24h_contracts)

    @property
    def min_depth(self) -> Qty:
        """``min_depth_contracts`` in 0.01 contracts."""
        return _qty(self.min_depth_contracts)

    @property
    def max_spread(self) -> Price:
        """``max_spread_cents`` in $0.0001 units."""
        return _price(self.max_spread_cents)


_REGIMES: Final = ("unknown", "quiet", "mean_reverting", "trending", "chaotic", "noise")


def _pairs(value: object) -> object:
    """``{key: value}`` as ``[[key, value], ...]`` (rows pass through)."""
    if isinstance(value, Mapping):
        return tuple((k, v) for k, v in value.items())
    return value


_Factors = Annotated[tuple[tuple[str, _Real], ...], BeforeValidator(_pairs)]
_NamePairs = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_pairs)]
_Profiles = tuple[tuple[str, _Real, _Cents, _Cents, _Real, tuple[str, ...]], ...]

_BAD: Final = ("trending", "chaotic", "unknown")
"""The regimes no session runs in by default (seed 000 also excludes noise; on the selection
board that earned $0.19 against $2.25 without it, README: The selection scoreboard)."""


class VolatilityConfig(_Section):
    """Volatility mode (``kmm run --mode volatility``, ``kmm scan --watch``): the websocket-fed
    scanner, the regime classifier, the sessions it spawns and the category profiles."""

    track_n: _Whole = Field(
        default=200, ge=1, description="How many of discovery's best markets the scanner tracks."
    )
    scan_s: _Real = Field(default=5.0, gt=0, description="Seconds between scans.")
    window_s: _Whole = Field(
        default=900, ge=10, description="Seconds of one-a-second samples kept per market."
    )
    warmup: _Whole = Field(default=60, ge=2, description="Samples before a trigger can fire.")
    jump_cents: _Cents = Field(
        default=Decimal(6),
        gt=0,
        le=100,
        description="A range this wide within jump_window_s is a jump.",
    )
    jump_window_s: _Whole = Field(default=300, ge=2, description="The jump trigger's window.")
    sigma_trigger_per_sqrt_s: _Real = Field(
        default=0.0015, gt=0, description="σ (dollars/√s, one-second changes) that triggers."
    )
    sigma_window_s: _Whole = Field(default=120, ge=3, description="The σ trigger's window.")
    revert_window_s: _Whole = Field(
        default=180, ge=2, description="Mean-reversion gate: the window of the mean..."
    )
    revert_tolerance_cents: _Cents = Field(
        default=Decimal(3), ge=0, description="...the price now must be within this of."
    )
    max_spread_cents: _Cents = Field(
        default=Decimal(10), gt=0, le=100, description="No event where others' spread is wider."
    )
    end_sigma_per_sqrt_s: _Real = Field(
        default=0.0005, ge=0, description="An episode ends below this σ with no jump in the window."
    )
    event_every_s: _Real = Field(
        default=60.0, ge=0, description="The least time between two events of one market."
    )
    regime_window_s: _Whole = Field(
        default=300, ge=10, description="The regime classifier's window."
    )
    min_observations: _Whole = Field(
        default=60, ge=2, description="Samples before any regime but unknown."
    )
    quiet_sigma_per_sqrt_s: _Real = Field(default=0.001, ge=0, description="Quiet below this σ.")
    chaotic_sigma_per_sqrt_s: _Real = Field(
        default=0.004, gt=0, description="Chaotic at or above this σ."
    )
    min_depth_contracts: _Contracts = Field(
        default=Decimal(1), ge=0, description="Noise when the thinner top side is smaller."
    )
    revert_good: _Real = Field(
        default=0.5, ge=0, le=1, description="Mean-reverting at or above this reversion score."
    )
    revert_bad: _Real = Field(
        default=0.1, ge=0, le=1, description="Trending at or below this reversion score."
    )
    drift_threshold: _Real = Field(
        default=2.0, gt=0, description="Trending when the net move is this many σ·√T."
    )
    noise_spread_cents: _Cents = Field(
        default=Decimal(7), gt=0, le=100, description="Noise when others' spread is this wide."
    )
    vr_base_s: _Whole = Field(
        default=15, ge=1, description="The variance ratio's base interval (reversion score)."
    )
    vr_lag: _Whole = Field(default=8, ge=2, description="Its lag, in base intervals.")
    stability: _Whole = Field(
        default=6, ge=1, description="Consecutive scans that must agree before a regime changes."
    )
    ttl_s: _Real = Field(default=900.0, gt=0, description="A session's time limit.")
    max_concurrent: _Whole = Field(default=15, ge=1, description="Sessions running at once.")
    session_max_position_contracts: _Contracts = Field(
        default=Decimal(3),
        gt=0,
        description="A session's position cap (times the profile's factor).",
    )
    danger_s: _Real = Field(
        default=180.0, ge=0, description="No session this close to a close; a running one ends."
    )
    illiquid_s: _Real = Field(
        default=60.0, gt=0, description="Quoting freezes while no public trade came this long."
    )
    min_sigma_per_sqrt_s: _Real = Field(
        default=0.0002, ge=0, description="A session ends when σ falls below this..."
    )
    min_sigma_grace_s: _Real = Field(default=30.0, ge=0, description="...after it ran this long.")
    cooldown_s: _Real = Field(
        default=60.0, ge=0, description="No new session in a market this soon after its last."
    )
    jump_ignore_cents: _Cents = Field(
        default=Decimal(10), gt=0, description="A jump this large ignores the event's σ."
    )
    snapshot_s: _Real = Field(
        default=60.0,
        gt=0,
        description="Every tracked market's snapshot goes into the ledger this often (those in "
        "a session: every scan).",
    )
    gamma_multipliers: _Factors = Field(
        default=(
            ("mean_reverting", 1.0),
            ("quiet", 0.8),
            ("trending", 1.5),
            ("chaotic", 2.0),
            ("noise", 1.2),
            ("unknown", 1.5),
        ),
        description="γ × this in each regime, as [regime, factor] rows or {regime: factor}.",
    )
    kappa_multipliers: _Factors = Field(
        default=(
            ("mean_reverting", 1.0),
            ("quiet", 0.7),
            ("trending", 0.5),
            ("chaotic", 0.3),
            ("noise", 0.6),
            ("unknown", 0.5),
        ),
        description="κ × this in each regime.",
    )
    profiles: _Profiles = Field(
        default=(
            ("mean_reverting", 0.5, Decimal(2), Decimal(4), 1.0, _BAD),
            ("medium_trending", 0.25, Decimal(3), Decimal(8), 1.0, ("chaotic", "unknown")),
            ("hard_trending", 0.2, Decimal(10), Decimal(20), 1.0, ("all",)),
            ("low_liquidity", 0.1, Decimal(4), Decimal(12), 1.0, _BAD),
        ),
        description="Category profiles as [name, sigma_blend, min_spread_cents, "
        "max_spread_cents, max_position_factor, [regimes where no session runs ('all': "
        "none at all)]].",
    )
    category_profiles: _NamePairs = Field(
        default=(
            ("Economics", "mean_reverting"),
            ("Financials", "mean_reverting"),
            ("Climate and Weather", "mean_reverting"),
            ("Crypto", "medium_trending"),
            ("Sports", "hard_trending"),
            ("Entertainment", "low_liquidity"),
            ("Science and Technology", "low_liquidity"),
            ("default", "mean_reverting"),
        ),
        description="Each category's profile, as [category, profile] rows or a mapping; "
        "'default' covers the categories not named.",
    )

    @model_validator(mode="after")
    def _check_names(self) -> VolatilityConfig:
        names = {p[0] for p in self.profiles}
        regimes = [r for r, _ in self.gamma_multipliers + self.kappa_multipliers]
        regimes += [r for p in self.profiles for r in p[5] if r != "all"]
        bad = sorted({r for r in regimes if r not in _REGIMES})
        if bad:
            raise PydanticCustomError(
                "kmm_regime",
                "unknown regime {bad}: regimes are {known}",
                {"bad": ", ".join(bad), "known": ", ".join(_REGIMES), "kmm_field": "profiles"},
            )
        missing = sorted({p for _, p in self.category_profiles if p not in names})
        if missing:
            raise PydanticCustomError(
                "kmm_profile",
                "category_profiles names profile {missing}, which profiles does not define",
                {"missing": ", ".join(missing), "kmm_field": "category_profiles"},
            )
        wide = [p[0] for p in self.profiles if p[2] > p[3]]
        if wide:
            raise PydanticCustomError(
                "kmm_profile_spread",
                "profile {name}: min_spread_cents is above max_spread_cents",
                {"name": wide[0], "kmm_field": "profiles"},
            )
        return self


class StrategyConfig(_Section):
    """Avellaneda–Stoikov quoting: risk aversion, volatility and order-arrival estimates, sizes."""

    gamma: _Real = Field(
        default=0.5,
        gt=0,
        description="Risk aversion γ, in 1/(contract·dollar). Larger skews quotes harder against "
        "inventory and widens the spread.",
    )
    kappa_default_per_dollar: _Real = Field(
        default=150.0,
        gt=0,
        description="Order-arrival decay κ, in 1/dollar, used until enough trades are seen to "
        "estimate it. Larger means fills fall off faster away from mid: a tighter spread.",
    )
    kappa_min_per_dollar: _Real = Field(
        default=5.0, gt=0, description="Lower clamp of the estimated κ, in 1/dollar."
    )
    kappa_max_per_dollar: _Real = Field(
        default=500.0, gt=0, description="Upper clamp of the estimated κ, in 1/dollar."
    )
    kappa_min_trades: _Whole = Field(
        default=20,
        ge=1,
        description="Public trades needed in a market before its κ estimate is used.",
    )
    kappa_halflife_trades: _Real = Field(
        default=50.0, gt=0, description="Half-life of the κ estimator's average, in trades."
    )
    horizon_s: _Real = Field(
        default=3600.0,
        gt=0,
        description="Cap on the time horizon τ, in seconds: τ is the time to the market's close, "
        "but never more than this.",
    )
    sigma_default_per_sqrt_s: _Real = Field(
        default=0.001,
        gt=0,
        description="Volatility σ of the YES price, in dollars per √second, used until enough "
        "mid changes are seen to estimate it.",
    )
    sigma_min_per_sqrt_s: _Real = Field(
        default=0.0001, gt=0, description="Lower clamp of the estimated σ, in dollars per √second."
    )
    sigma_max_per_sqrt_s: _Real = Field(
        default=0.01,
        gt=0,
        description="Upper clamp of σ, in dollars per √second (σ is also bounded by the p(1−p) "
        "shape near 0 and 1).",
    )
    vol_halflife_s: _Real = Field(
        default=120.0,
        gt=0,
        description="Half-life of the EWMA volatility estimate, in seconds (120 scored best of "
        "120, 300 and 900 on the strategy scoreboard).",
    )
    vol_min_samples: _Whole = Field(
        default=30,
        ge=1,
        description="Mid changes needed in a market before its σ estimate is used.",
    )
    order_size_contracts: _Contracts = Field(
        default=Decimal(5),
        gt=0,
        description="Base size of each quote, in contracts (steps of 0.01), before the "
        "inventory shaping by eta.",
    )
    lot_size_contracts: _Contracts = Field(
        default=Decimal(1),
        gt=0,
        description="Quote sizes are rounded down to a multiple of this, in contracts.",
    )
    max_order_contracts: _Contracts = Field(
        default=Decimal(10), gt=0, description="Largest size of one order, in contracts."
    )
    eta: _Real = Field(
        default=0.05,
        ge=0,
        description="Inventory size shaping η, in 1/contract: the side that adds to the "
        "position is quoted at order_size·exp(−η·|position|). 0 disables it.",
    )
    extreme_low_cents: _Cents = Field(
        default=Decimal(5),
        ge=0,
        le=100,
        description="Below this fair price, in cents, quote only the bid (or only the side that "
        "reduces a position). 0 disables the band.",
    )
    extreme_high_cents: _Cents = Field(
        default=Decimal(95),
        ge=0,
        le=100,
        description="Above this fair price, in cents, quote only the ask (or only the side that "
        "reduces a position). 100 disables the band.",
    )
    soft_low_cents: _Cents = Field(
        default=Decimal(20),
        ge=0,
        le=100,
        description="Below this fair price, in cents (and above extreme_low_cents), both sides are "
        "quoted but the ask, which risks the most, keeps only soft_size_factor of its size "
        "unless it reduces a long. Equal to extreme_low_cents: no soft band.",
    )
    soft_high_cents: _Cents = Field(
        default=Decimal(80),
        ge=0,
        le=100,
        description="Above this fair price, in cents (and below extreme_high_cents), the bid keeps "
        "only soft_size_factor of its size unless it reduces a short. Equal to "
        "extreme_high_cents: no soft band.",
    )
    soft_size_factor: _Real = Field(
        default=0.25,
        ge=0,
        le=1,
        description="The share of its size the risky side keeps in a soft band (1: no effect).",
    )
    gamma_inventory: _Real = Field(
        default=0.0,
        ge=0,
        description="Risk aversion grows with the position: gamma·(1 + this·|position| / "
        "risk.max_position_contracts). 0 keeps gamma constant.",
    )
    edge_cents: _Cents = Field(
        default=Decimal(0),
        ge=0,
        description="Extra half-spread added on top of the model's (and of any maker fee), in "
        "cents.",
    )
    min_spread_cents: _Cents = Field(
        default=Decimal(0),
        ge=0,
        le=100,
        description="Smallest total spread kmm's quoter quotes (ask - bid before rounding to the "
        "grid), in cents; 0: the model's.",
    )
    max_spread_cents: _Cents = Field(
        default=Decimal(100),
        ge=0,
        le=100,
        description="Largest total spread kmm's quoter quotes, in cents, but never inside the "
        "maker fee; 100: the model's.",
    )
    min_market_spread_cents: _Cents = Field(
        default=Decimal(0),
        ge=0,
        le=100,
        description="A market whose book (without our orders) is narrower than this, in cents, "
        "is not quoted by kmm's quoter; 0 disables it.",
    )
    improve_ticks: int = Field(
        default=1,
        ge=0,
        le=100,
        description="How far a quote may improve on others' best price, in grid ticks: a model "
        "price inside the touch by more is moved back to the touch plus this (0: only join).",
    )
    fill_cooldown_ms: _Whole = Field(
        default=500,
        ge=0,
        description="After a fill, that side is not quoted for this long, and then not until "
        "the fair price has stood still for settle_ms (kmm's quoter only). 0 disables it.",
    )
    settle_ms: _Whole = Field(
        default=500,
        ge=0,
        description="A fill cooldown or a jump hold ends once the fair price has not moved for "
        "this long.",
    )
    settle_move_cents: _Cents = Field(
        default=Decimal(0),
        ge=0,
        description="A change of the fair price smaller than this does not count as a move when "
        "waiting for it to settle, in cents. 0 counts every change: on the scoreboard 1 earned "
        "more in thin, whose touch flickers, and lost more in jump.",
    )
    max_hold_ms: _Whole = Field(
        default=5000,
        ge=0,
        description="No fill cooldown or jump hold lasts longer than this.",
    )
    jump_cents: _Cents = Field(
        default=Decimal(3),
        ge=0,
        description="A move of the fair price of at least this within jump_window_ms pulls both "
        "sides until it settles (kmm's quoter only). 0 disables the jump guard.",
    )
    jump_window_ms: _Whole = Field(
        default=1000, gt=0, description="The window a jump of the fair price is measured over."
    )
    spread_shock_ratio: _Real = Field(
        default=0.0,
        ge=0,
        description="Others' spread above this times its average (and at least "
        "spread_shock_min_cents wider), or a side with no one on it, is a spread shock: both "
        "sides are pulled (kmm's quoter only). 0 disables the guard.",
    )
    spread_shock_min_cents: _Cents = Field(
        default=Decimal(2),
        ge=0,
        description="A spread shock must also be at least this much wider than the average, in "
        "cents.",
    )
    spread_halflife_s: _Real = Field(
        default=60.0, gt=0, description="Half-life of the spread's average, in seconds."
    )
    thin_depth_contracts: _Contracts = Field(
        default=Decimal(0),
        ge=0,
        description="Others' size at the touch below this on either side, in contracts, makes a "
        "book thin: the quote keeps thin_size_factor of its sizes. 0 disables the guard.",
    )
    thin_size_factor: _Real = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The share of its sizes a quote keeps while the book is thin (0 pulls it).",
    )
    book_guard_trigger: _Whole = Field(
        default=2,
        ge=1,
        description="Decisions in a row with a shocked (or thin) book before its guard acts.",
    )
    book_guard_recover: _Whole = Field(
        default=3,
        ge=1,
        description="Decisions in a row with a normal book before its guard lets go.",
    )
    toxic_horizon_s: _Real = Field(
        default=5.0,
        gt=0,
        description="How long after a fill its markout is checked by the toxicity guard, in s.",
    )
    toxic_trigger: _Whole = Field(
        default=0,
        ge=0,
        description="Fills in a row whose markout went against us that make a market toxic "
        "(kmm's quoter only; 0 disables the toxicity guard, the default: on the scoreboard, "
        "2 earned more in calm, trending and thin but lost more in jump, and less in all).",
    )
    toxic_recover: _Whole = Field(
        default=3, ge=1, description="Good markouts in a row that end a market's toxic state."
    )
    toxic_calm_s: _Real = Field(
        default=60.0,
        gt=0,
        description="A toxic market is normal again after this long without a bad markout, in s.",
    )
    toxic_widen_cents: _Cents = Field(
        default=Decimal(2),
        ge=0,
        description="Extra half-spread a side while a market is toxic, in cents.",
    )
    flow_halflife_s: _Real = Field(
        default=5.0,
        gt=0,
        description="Half-life of the net taker flow (signed size of public trades) that skews "
        "kmm's quotes toward where takers push, in seconds.",
    )
    flow_skew_cents_per_contract: _Real = Field(
        default=0.0,
        ge=0,
        description="Skew of the reservation price per contract of net taker flow, in cents "
        "(0 disables the taker-flow skew).",
    )
    flow_skew_max_cents: _Real = Field(
        default=3.0, ge=0, description="The largest taker-flow skew either way, in cents."
    )
    fair_value: Literal["mid", "microprice"] = Field(
        default="mid",
        description="The price the quotes centre on: mid (average of best bid and ask) or "
        "microprice (mid weighted by the sizes at the top).",
    )
    model: Literal["kmm", "fixed", "join", "hbot_as"] = Field(
        default="kmm",
        description="The quoter: kmm (the binary-adapted Avellaneda-Stoikov), or one of the "
        "scoreboard's baselines: fixed (fair price ± baseline_ticks), join (the touch, skewed one "
        "tick per baseline_skew_contracts of inventory), hbot_as (textbook Avellaneda-Stoikov on a "
        "fixed horizon, no binary bound, fee floor or bands).",
    )
    baseline_ticks: int = Field(
        default=2,
        ge=1,
        le=50,
        description="The fixed baseline's distance from the fair price, in grid ticks a side.",
    )
    baseline_skew_contracts: _Real = Field(
        default=5.0,
        gt=0,
        description="The join baseline's skew: one tick per this many contracts of inventory.",
    )

    @field_validator("kappa_min_per_dollar", "sigma_min_per_sqrt_s")
    @classmethod
    def _check_min(cls, value: float, info: ValidationInfo) -> float:
        _not_above(info, value, _default_name(info.field_name))
        return value

    @field_validator("kappa_max_per_dollar", "sigma_max_per_sqrt_s")
    @classmethod
    def _check_max(cls, value: float, info: ValidationInfo) -> float:
        name = info.field_name or ""
        _not_below(info, value, _default_name(name))
        _not_below(info, value, name.replace("_max_", "_min_"))
        return value

    @field_validator("lot_size_contracts")
    @classmethod
    def _check_lot(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        _not_above(info, value, "order_size_contracts")
        return value

    @field_validator("max_order_contracts")
    @classmethod
    def _check_max_order(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        _not_below(info, value, "order_size_contracts")
        return value

    @field_validator("extreme_high_cents")
    @classmethod
    def _check_band(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        _not_below(info, value, "extreme_low_cents", strict=True)
        return value

    @field_validator("soft_low_cents")
    @classmethod
    def _check_soft_low(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        _not_below(info, value, "extreme_low_cents")
        return value

    @field_validator("soft_high_cents")
    @classmethod
    def _check_soft_high(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        _not_below(info, value, "soft_low_cents")
        _not_above(info, value, "extreme_high_cents")
        return value

    @property
    def spread_shock_min(self) -> Price:
        """``spread_shock_min_cents`` in $0.0001 units."""
        return _price(self.spread_shock_min_cents)

    @property
    def thin_depth(self) -> Qty:
        """``thin_depth_contracts`` in 0.01-contract units."""
        return _qty(self.thin_depth_contracts)

    @property
    def soft_low(self) -> Price:
        """``soft_low_cents`` in $0.0001 units."""
        return _price(self.soft_low_cents)

    @property
    def soft_high(self) -> Price:
        """``soft_high_cents`` in $0.0001 units."""
        return _price(self.soft_high_cents)

    @property
    def base_qty(self) -> Qty:
        """``order_size_contracts`` in 0.01-contract units."""
        return _qty(self.order_size_contracts)

    @property
    def lot_qty(self) -> Qty:
        """``lot_size_contracts`` in 0.01-contract units."""
        return _qty(self.lot_size_contracts)

    @property
    def max_order_qty(self) -> Qty:
        """``max_order_contracts`` in 0.01-contract units."""
        return _qty(self.max_order_contracts)

    @property
    def extreme_low(self) -> Price:
        """``extreme_low_cents`` in $0.0001 units."""
        return _price(self.extreme_low_cents)

    @property
    def extreme_high(self) -> Price:
        """``extreme_high_cents`` in $0.0001 units."""
        return _price(self.extreme_high_cents)

    @property
    def edge(self) -> Price:
        """``edge_cents`` in $0.0001 units."""
        return _price(self.edge_cents)

    @property
    def min_spread(self) -> Price:
        """``min_spread_cents`` in $0.0001 units."""
        return _price(self.min_spread_cents)

    @property
    def max_spread(self) -> Price:
        """``max_spread_cents`` in $0.0001 units."""
        return _price(self.max_spread_cents)

    @property
    def min_market_spread(self) -> Price:
        """``min_market_spread_cents`` in $0.0001 units."""
        return _price(self.min_market_spread_cents)

    @property
    def settle_move(self) -> Price:
        """``settle_move_cents`` in $0.0001 units."""
        return _price(self.settle_move_cents)

    @property
    def toxic_widen(self) -> Price:
        """``toxic_widen_cents`` in $0.0001 units."""
        return _price(self.toxic_widen_cents)

    @property
    def jump(self) -> Price:
        """``jump_cents`` in $0.0001 units."""
        return _price(self.jump_cents)


def _default_name(name: str | None) -> str:
    """``kappa_min_per_dollar`` -> ``kappa_default_per_dollar`` (and the same for sigma)."""
    return (name or "").replace("_min_", "_default_").replace("_max_", "_default_")


class RiskConfig(_Section):
    """Hard limits, checked before every order, and the kill switch."""

    max_position_contracts: _Contracts = Field(
        default=Decimal(50),
        gt=0,
        description="Largest absolute position in one market, in contracts (YES positive, NO "
        "negative); quoting the side that would exceed it stops.",
    )
    max_total_position_contracts: _Contracts = Field(
        default=Decimal(500),
        gt=0,
        description="Largest sum of absolute positions over all markets, in contracts.",
    )
    max_order_notional_dollars: _Dollars = Field(
        default=Decimal(50),
        gt=0,
        description="Largest value of one order (price × count), in dollars.",
    )
    max_open_orders: _Whole = Field(
        default=200, ge=1, description="Most orders resting or in flight at once, over all markets."
    )
    max_market_exposure_dollars: _Dollars | None = Field(
        default=None,
        gt=0,
        description="Largest money at risk in one market, in dollars: the larger of what its YES "
        "side (a long position's cost plus every bid's) and its NO side (a short's NO cost plus "
        "every ask's at 1 - price) would lose if it settled against us. Null for no cap.",
    )
    max_event_exposure_dollars: _Dollars | None = Field(
        default=None,
        gt=0,
        description="Largest sum of money at risk over the markets of one event (they move "
        "together), in dollars. Null for no cap.",
    )
    max_category_exposure_dollars: _Dollars | None = Field(
        default=None,
        gt=0,
        description="Largest sum of money at risk over the markets of one category (of the "
        "event's series), in dollars. Null for no cap.",
    )
    max_total_exposure_dollars: _Dollars | None = Field(
        default=None,
        gt=0,
        description="Largest sum of money at risk over every market, in dollars. Null for no cap.",
    )
    max_resting_value_dollars: _Dollars | None = Field(
        default=None,
        gt=0,
        description="Largest cost of every open order together (bids at their price, asks at "
        "1 - price), in dollars. Null for no cap.",
    )
    max_daily_loss_dollars: _Dollars = Field(
        default=Decimal(100),
        gt=0,
        description="Realized plus unrealized loss since 00:00 UTC, net of fees, in dollars, "
        "at which kmm cancels everything and stops quoting.",
    )
    max_drawdown_dollars: _Dollars = Field(
        default=Decimal(150),
        gt=0,
        description="Fall from the run's peak P&L, net of fees, in dollars, at which kmm cancels "
        "everything and stops quoting.",
    )
    max_unknown_orders: _Whole = Field(
        default=5,
        ge=0,
        description="Orders whose outcome is unknown (timeout, 5xx, disconnect) tolerated before "
        "new orders stop until reconciliation clears them.",
    )
    stale_book_s: _Real = Field(
        default=30.0,
        gt=0,
        description="A market whose book has had no message or confirmation for this long, in "
        "seconds, is not quoted (its orders are cancelled).",
    )
    no_quote_before_close_s: _Real = Field(
        default=60.0,
        ge=0,
        description="Stop quoting a market this long before its close, in seconds, and cancel "
        "its orders.",
    )
    wind_down_before_close_s: _Real = Field(
        default=300.0,
        ge=0,
        description="From this long before a market's close, in seconds, quote only the side "
        "that reduces the position.",
    )
    kill_file: Path = Field(
        default=Path("KILL"),
        description="If this file exists kmm cancels every order and stops quoting (relative "
        "paths are from the working directory).",
    )
    order_group_contracts_limit: _Contracts | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="If set, orders go in a Kalshi order group with this contracts limit: more "
        "matched contracts than this in any rolling 15 s cancels the group's orders on the "
        "exchange. Null for no order group.",
    )
    one_sided_mark_haircut_cents: _Cents = Field(
        default=Decimal(5),
        ge=0,
        le=100,
        description="When the side of a market's book a position would exit into is empty, the "
        "position is marked this many cents worse than the last trade (or the other side), in "
        "cents: the P&L that drives the kill switch never marks at a stale mid.",
    )
    drift_tolerance_contracts: _Contracts = Field(
        default=Decimal(0),
        ge=0,
        description="After reconciliation, a market whose local position differs from the "
        "exchange's by more than this, in contracts, stops quoting.",
    )

    @field_validator("max_total_position_contracts")
    @classmethod
    def _check_total(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        _not_below(info, value, "max_position_contracts")
        return value

    @field_validator("wind_down_before_close_s")
    @classmethod
    def _check_wind_down(cls, value: float, info: ValidationInfo) -> float:
        _not_below(info, value, "no_quote_before_close_s")
        return value

    @property
    def max_position(self) -> Qty:
        """``max_position_contracts`` in 0.01-contract units."""
        return _qty(self.max_position_contracts)

    @property
    def max_total_position(self) -> Qty:
        """``max_total_position_contracts`` in 0.01-contract units."""
        return _qty(self.max_total_position_contracts)

    @property
    def max_order_notional(self) -> Money:
        """``max_order_notional_dollars`` in $0.000001 units (comparable to price × qty)."""
        return _money(self.max_order_notional_dollars)

    @property
    def max_market_exposure(self) -> Money | None:
        """``max_market_exposure_dollars`` in $0.000001 units, or None."""
        return _optional_money(self.max_market_exposure_dollars)

    @property
    def max_event_exposure(self) -> Money | None:
        """``max_event_exposure_dollars`` in $0.000001 units, or None."""
        return _optional_money(self.max_event_exposure_dollars)

    @property
    def max_category_exposure(self) -> Money | None:
        """``max_category_exposure_dollars`` in $0.000001 units, or None."""
        return _optional_money(self.max_category_exposure_dollars)

    @property
    def max_total_exposure(self) -> Money | None:
        """``max_total_exposure_dollars`` in $0.000001 units, or None."""
        return _optional_money(self.max_total_exposure_dollars)

    @property
    def max_resting_value(self) -> Money | None:
        """``max_resting_value_dollars`` in $0.000001 units, or None."""
        return _optional_money(self.max_resting_value_dollars)

    @property
    def max_daily_loss(self) -> Money:
        """``max_daily_loss_dollars`` in $0.000001 units."""
        return _money(self.max_daily_loss_dollars)

    @property
    def max_drawdown(self) -> Money:
        """``max_drawdown_dollars`` in $0.000001 units."""
        return _money(self.max_drawdown_dollars)

    @property
    def order_group_limit(self) -> Qty | None:
        """``order_group_contracts_limit`` in 0.01-contract units, or None."""
        limit = self.order_group_contracts_limit
        return None if limit is None else _qty(limit)

    @property
    def drift_tolerance(self) -> Qty:
        """``drift_tolerance_contracts`` in 0.01-contract units."""
        return _qty(self.drift_tolerance_contracts)

    @property
    def one_sided_mark_haircut(self) -> Price:
        """``one_sided_mark_haircut_cents`` in $0.0001 units."""
        return _price(self.one_sided_mark_haircut_cents)

    @property
    def stale_book_ns(self) -> int:
        """``stale_book_s`` in nanoseconds."""
        return _ns(self.stale_book_s)


_ORDER_ID_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,40}")


class ExecutionConfig(_Section):
    """How targets become orders: hysteresis, freshness, start-up policy, order flags."""

    min_move_ticks: _Whole = Field(
        default=1,
        ge=1,
        description="A resting order is repriced only when its target moved at least this many "
        "ticks (of the market's price grid).",
    )
    min_qty_change_contracts: _Contracts = Field(
        default=Decimal(1),
        ge=0,
        description="A resting order is resized only when its target size changed by at least "
        "this many contracts.",
    )
    min_rest_ms: _Whole = Field(
        default=500,
        ge=0,
        description="An order younger than this, in milliseconds, is not moved to a better "
        "price (moves away from a stale, unsafe price are never delayed).",
    )
    target_freshness_ms: _Whole = Field(
        default=1000,
        gt=0,
        description="An order placement still waiting for rate-limit tokens after this long, "
        "in milliseconds, is dropped rather than sent late.",
    )
    cancel_on_start: Literal["cancel", "adopt"] = Field(
        default="cancel",
        description="What to do with orders already resting at start: cancel them, or adopt "
        "them as kmm's own.",
    )
    reconcile_interval_s: _Real = Field(
        default=30.0,
        gt=0,
        description="How often orders and positions are reconciled with the exchange over "
        "REST, in seconds.",
    )
    client_order_prefix: str | None = Field(
        default=None,
        description="Prefix of client order ids (letters, digits, '-' and '_', at most 40). "
        "Null derives one from the run id.",
    )
    batch_cancel: bool = Field(
        default=True,
        description="Cancel several orders with one batch request (2 tokens per order).",
    )
    presign: bool = Field(
        default=True,
        description="Prepare the RSA signatures of the order path (create, batch cancel, the "
        "amend of each resting order) ahead of time on a worker thread and reuse them for up "
        "to 2 s, so no signing happens on the event loop between a tick and its order. false "
        "signs every request on the event loop when it is sent.",
    )
    order_lane_connections: int = Field(
        default=8,
        ge=0,
        le=32,
        description="Keep-alive connections reserved for order writes, on which a create, "
        "amend or cancel is written to the socket in the same call that decides it (reads and "
        "any write they cannot take go through aiohttp). 0 sends every write through aiohttp.",
    )
    post_only: bool = Field(
        default=True,
        description="Send orders post-only, so that an order which would take is rejected "
        "instead of crossing.",
    )
    cancel_on_pause: bool = Field(
        default=True,
        description="Ask Kalshi to cancel kmm's orders when trading is paused "
        "(cancel_order_on_pause).",
    )
    self_trade_prevention: Literal["taker_at_cross", "maker"] = Field(
        default="taker_at_cross",
        description="Kalshi's self-trade prevention: taker_at_cross cancels the incoming order, "
        "maker cancels the resting one.",
    )

    @field_validator("client_order_prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _ORDER_ID_PREFIX.fullmatch(value):
            raise PydanticCustomError("kmm_prefix", "must be 1 to 40 letters, digits, '-' or '_'")
        return value

    @property
    def min_qty_change(self) -> Qty:
        """``min_qty_change_contracts`` in 0.01-contract units."""
        return _qty(self.min_qty_change_contracts)

    @property
    def min_rest_ns(self) -> int:
        """``min_rest_ms`` in nanoseconds."""
        return self.min_rest_ms * _NS_PER_MS

    @property
    def target_freshness_ns(self) -> int:
        """``target_freshness_ms`` in nanoseconds."""
        return self.target_freshness_ms * _NS_PER_MS

    @property
    def reconcile_interval_ns(self) -> int:
        """``reconcile_interval_s`` in nanoseconds."""
        return _ns(self.reconcile_interval_s)


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


class RecordConfig(_Section):
    """What a run writes: the tape, raw captures, the ledger, logs."""

    runs_dir: Path = Field(
        default=Path("runs"), description="Directory under which each run writes its own folder."
    )
    capture: bool = Field(
        default=False, description="Also record every raw websocket frame with its receipt time."
    )
    flush_interval_s: _Real = Field(
        default=1.0, gt=0, description="How often the recorder flushes files to disk, in seconds."
    )
    ledger_path: Path = Field(
        default=Path("runs/ledger.sqlite"),
        description="SQLite ledger of orders, fills and P&L, shared by runs.",
    )
    log_level: Annotated[LogLevel, BeforeValidator(_upper)] = Field(
        default="INFO", description="Lowest level written to the ops log (case-insensitive)."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="The ops log's lines: text (time, level, logger, [ticker order] message) "
        "or json (one object a line: ts, level, logger, message, ticker, client_order_id, exc).",
    )
    queue_positions_s: _Real = Field(
        default=0.0,
        ge=0,
        description="Every this many seconds, read the queue place of each resting order "
        "(GET /portfolio/orders/queue_positions, one Read) into the ops log; 0: never.",
    )


class SimConfig(_Section):
    """The local Kalshi-compatible exchange (`kmm sim`, and venue.env: sim)."""

    seed: _Whole = Field(
        default=7, description="Random seed; the same seed gives the same session."
    )
    markets: _Whole = Field(default=8, ge=1, description="Number of markets the exchange lists.")
    scenario: Scenario = Field(
        default="calm",
        description="Market behaviour the exchange simulates (thin: sparse books; near_close: "
        "markets close soon; settlement: markets settle during the run; mixed: dozens of series "
        "and events, each market in its own flow regime, changing over time).",
    )
    host: str = Field(default="127.0.0.1", description="Address the exchange listens on.")
    port: _Whole = Field(
        default=8080,
        ge=0,
        le=PORT_MAX,
        description="Port the exchange listens on; 0 picks a free one. 8080 matches the default "
        "sim URLs (kmm.kalshi.constants).",
    )
    state_dir: Path = Field(
        default=Path("state/sim"),
        description="Directory where the exchange keeps its state (its API keys); outside "
        "record.runs_dir, so that it is never taken for a run.",
    )
    tier: TierName = Field(
        default="basic",
        description="Kalshi usage tier whose rate limits the exchange enforces (token buckets).",
    )
    clock: Literal["wall", "manual"] = Field(
        default="wall",
        description="The exchange's clock: wall (real time) or manual (moves only when a test or "
        "backtest advances it).",
    )


class BacktestConfig(_Section):
    """``kmm backtest``: how the simulated venue treats our orders (flags override)."""

    queue_model: QueueModelName = Field(
        default="conservative",
        description="Replaying a capture: how our virtual order advances in its queue "
        "(conservative: only trades at our price advance it; probabilistic: cancels ahead "
        "advance it too, with probability by position, as hftbacktest's power model).",
    )
    queue_power: _Real = Field(
        default=2.0, gt=0, description="The probabilistic queue model's power."
    )
    order_latency_ms: _Real = Field(
        default=5.0, ge=0, description="One-way order latency: request to exchange, and back."
    )
    feed_latency_ms: _Real = Field(
        default=2.0, ge=0, description="Feed latency: exchange to bot (added to a capture's)."
    )
    latency_sigma: _Real = Field(
        default=0.0,
        ge=0,
        description="0: the latencies above are constant; above 0: each delay is drawn "
        "lognormally around them with this sigma (seeded).",
    )
    latency_from: Path | None = Field(
        default=None,
        description="A live run directory whose recorded delays the backtest draws from "
        "(feed: tape.csv latency_ms; order: half of each orders.csv sent -> acked); "
        "overrides the latencies above.",
    )


class OpsConfig(_Section):
    """Operating a running bot: the metrics and the control API it serves, its alerts."""

    metrics_port: _Whole | None = Field(
        default=0,
        ge=0,
        le=65535,
        description="kmm run serves Prometheus metrics on http://127.0.0.1:PORT/metrics (0: a "
        "free port; null: none); the URL is printed at start and written to metrics.url in "
        "the run directory.",
    )
    control_port: _Whole | None = Field(
        default=0,
        ge=0,
        le=65535,
        description="kmm run serves its control API and dashboard on http://127.0.0.1:PORT/ "
        "(0: a free port; null: none); the URL is printed at start and written to "
        "control.url in the run directory, the token every request needs to control.token "
        "(mode 0600).",
    )
    webhook_url: str | None = Field(
        default=None,
        description="Alerts are POSTed here as JSON that Slack, Discord and generic receivers "
        "accept (null: no alerts).",
    )
    alert_loss_dollars: _Dollars | None = Field(
        default=None,
        gt=0,
        description="Alert once the run's P&L is below minus this (null: never).",
    )
    alert_errors: _Whole = Field(
        default=10,
        ge=1,
        description="Alert when this many orders were rejected or went unknown within "
        "alert_errors_window_s.",
    )
    alert_errors_window_s: _Real = Field(
        default=60.0, gt=0, description="The window of alert_errors, in seconds."
    )
    alert_stale_feed_s: _Real = Field(
        default=30.0,
        ge=0,
        description="Alert when the venue's feed sent nothing for this long (0: never).",
    )
    alert_no_fills_s: _Real = Field(
        default=3600.0,
        ge=0,
        description="Alert when nothing filled for this long while quoting (0: never).",
    )
    alert_every_s: _Real = Field(
        default=300.0,
        ge=0,
        description="The same alert is sent at most once in this many seconds.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _check_webhook(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value


class ExitConfig(_Section):
    """Working positions out: ``kmm flatten``, before a market's close, at the end of a run."""

    max_slippage_cents: _Cents = Field(
        default=Decimal(5),
        ge=0,
        le=100,
        description="An exit never sells below (or buys above) the market's fair price when the "
        "exit began by more than this, in cents: a market that runs away stalls the exit at "
        "that price instead of selling into the move.",
    )
    before_close_s: _Real = Field(
        default=0.0,
        ge=0,
        description="From this long before a market's close, in seconds, stop quoting it and "
        "work its position out (in before_close_style); 0: off. Must be longer than "
        "risk.no_quote_before_close_s, when quoting stops altogether.",
    )
    before_close_style: ExitStyleName = Field(
        default="take",
        description="How the exit before a close prices its order: take (cross the spread, at "
        "others' best price, never past the slippage cap) or passive (post-only, one tick "
        "inside others' best price).",
    )
    on_stop: Literal["none", "passive", "take"] = Field(
        default="none",
        description="At the end of kmm run (--duration, Ctrl-C, SIGTERM): none cancels at once; "
        "passive or take first stops quoting and works every position out, for up to "
        "stop_timeout_s, then cancels.",
    )
    stop_timeout_s: _Real = Field(
        default=60.0,
        gt=0,
        description="The longest an exit at the end of a run (exit.on_stop) or kmm flatten "
        "works, in seconds, before it cancels what rests and stops.",
    )

    @property
    def max_slippage(self) -> Price:
        """``max_slippage_cents`` in $0.0001 units."""
        return _price(self.max_slippage_cents)


class KmmConfig(_Section):
    """The whole configuration; every section defaults to its defaults."""

    venue: VenueConfig = Field(default=VenueConfig(), description="The exchange.")
    auth: AuthConfig = Field(default=AuthConfig(), description="Credentials.")
    markets: MarketsConfig = Field(default=MarketsConfig(), description="Markets.")
    discovery: DiscoveryConfig = Field(default=DiscoveryConfig(), description="Discovery.")
    volatility: VolatilityConfig = Field(default=VolatilityConfig(), description="Volatility mode.")
    strategy: StrategyConfig = Field(default=StrategyConfig(), description="Quoting.")
    risk: RiskConfig = Field(default=RiskConfig(), description="Limits.")
    execution: ExecutionConfig = Field(default=ExecutionConfig(), description="Orders.")
    exit: ExitConfig = Field(default=ExitConfig(), description="Exits.")
    ops: OpsConfig = Field(default=OpsConfig(), description="Operations.")
    record: RecordConfig = Field(default=RecordConfig(), description="Recording.")
    sim: SimConfig = Field(default=SimConfig(), description="The local exchange.")
    backtest: BacktestConfig = Field(default=BacktestConfig(), description="Backtests.")

    @model_validator(mode="after")
    def _check_credentials(self) -> KmmConfig:
        if self.venue.env != "sim" and not self.auth.complete:
            raise PydanticCustomError(
                "kmm_credentials",
                "key_id and a private key (private_key_path or private_key_env) are required "
                "when venue.env is {env}",
                {"kmm_field": "auth", "env": self.venue.env},
            )
        return self

    @model_validator(mode="after")
    def _check_exit_before_close(self) -> KmmConfig:
        before, off = self.exit.before_close_s, self.risk.no_quote_before_close_s
        if before and before <= off:
            raise PydanticCustomError(
                "kmm_exit_close",
                "must be longer than risk.no_quote_before_close_s ({off} s), when quoting "
                "stops and nothing could be exited, got {before}",
                {"kmm_field": "exit.before_close_s", "off": off, "before": before},
            )
        return self


_SECTIONS: Final[dict[str, type[_Section]]] = {
    name: info.annotation
    for name, info in KmmConfig.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, _Section)
}


# --------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """A safe loader that reads decimal numbers as ``Decimal`` and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal | float:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        # .inf, .nan and base-60 forms: let YAML read them (the models refuse non-finite).
        return float(loader.construct_yaml_float(node))
    return value


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return str(exc)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc}"]) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML syntax error at {_yaml_problem(exc)}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"{_show(data)}"
        raise ConfigError([f"{path}: top level must be a mapping of sections, got {kind}"])
    # `section:` with every field commented out reads as null: it means all defaults.
    return {str(k): ({} if v is None else v) for k, v in data.items()}


def _is_text(info: FieldInfo) -> bool:
    kinds = set(get_args(info.annotation)) or {info.annotation}
    return bool(kinds - {type(None)}) and kinds - {type(None)} <= {str, Path}


def _override(
    data: dict[str, Any], name: str, raw: str, sources: dict[tuple[str, ...], str]
) -> str | None:
    """Applies one ``KMM__SECTION__FIELD`` variable to ``data``; returns a problem or None."""
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    if len(parts) != 2 or not all(parts):
        return f"{name}: expected {ENV_PREFIX}SECTION__FIELD"
    section, field = parts
    model = _SECTIONS.get(section)
    if model is None:
        return f"{name}: unknown section '{section}'"
    info = model.model_fields.get(field)
    if info is None:
        return f"{name}: unknown field '{field}' in section '{section}'"
    try:
        value = raw if _is_text(info) else yaml.load(raw, Loader=_Loader)
    except yaml.YAMLError as exc:
        return f"{name}: not a YAML value ({_yaml_problem(exc)})"
    target = data.setdefault(section, {})
    if isinstance(target, dict):  # otherwise validation reports the section itself
        target[field] = value
        sources[(section, field)] = name
    return None


def load_config(path: Path | None, environ: Mapping[str, str]) -> KmmConfig:
    """Loads the configuration from a YAML file and ``KMM__SECTION__FIELD`` overrides.

    Args:
        path: The YAML file, or None for defaults plus overrides only.
        environ: The environment to take overrides from (pass ``os.environ``).

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: with one line per problem, e.g. ``strategy.gamma: must be > 0, got -1``.
    """
    data = _read_yaml(path) if path is not None else {}
    sources: dict[tuple[str, ...], str] = {}
    problems: list[str] = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX):
            problem = _override(data, name, environ[name], sources)
            if problem is not None:
                problems.append(problem)
    try:
        config = KmmConfig.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(error, sources) for error in exc.errors()]
    if problems:
        raise ConfigError(problems) from None
    return config


def with_fields(config: KmmConfig, fields: Mapping[str, Any]) -> KmmConfig:
    """The configuration with some dotted fields set (``{"strategy.gamma": 0.8}``), validated
    whole as a config file would be.

    Raises:
        ConfigError: one line per problem, as :func:`load_config` gives them.
    """
    data = config.model_dump()
    for name, value in fields.items():
        section, _, field = name.partition(".")
        if section not in data or not field:
            raise ConfigError([f"{name}: not a config field (section.field)"])
        data[section][field] = value
    try:
        return KmmConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(error, {}) for error in exc.errors()]) from None


# --------------------------------------------------------------------------- error lines

_REASONS: Final[dict[str, str]] = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "literal_error": "must be {expected}",
    "extra_forbidden": "unknown field",
    "missing": "required",
    "finite_number": "must be a finite number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "decimal_parsing": "must be a decimal number",
    "decimal_type": "must be a decimal number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a whole number of sensible size",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "path_type": "must be a path",
}
# Errors whose input is not worth showing: absent, or the whole section, or a secret.
_NO_INPUT: Final = frozenset(
    {
        "extra_forbidden",
        "missing",
        "kmm_private_key",
        "kmm_credentials",
        "kmm_discovery_lists",
        "kmm_hosts",
        "kmm_exit_close",
    }
)


def validate_override(ticker: str, data: Mapping[str, Any]) -> MarketOverride:
    """One market's override from JSON or YAML data (the control API's), checked as the
    config file's ``markets.overrides.TICKER`` would be.

    Raises:
        ConfigError: one line per problem, ``markets.overrides.TICKER.field: reason``.
    """
    problem = _names_problem([ticker])
    if problem is not None:
        raise ConfigError([f"markets.overrides: {problem}"])
    try:
        return MarketOverride.model_validate(data)
    except ValidationError as exc:
        prefix = ("markets", "overrides", ticker)
        raise ConfigError(
            [_problem({**e, "loc": (*prefix, *e["loc"])}, {}) for e in exc.errors()]
        ) from None


def _path(error: ErrorDetails) -> str:
    loc: list[str | int] = list(error["loc"])
    field = (error.get("ctx") or {}).get("kmm_field")
    if field:
        loc.append(str(field))
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _reason(error: ErrorDetails) -> str:
    kind = error["type"]
    template = _REASONS.get(kind)
    if template is None:
        message = error["msg"].removeprefix("Value error, ")
        return message.replace("Input should be", "must be", 1)
    ctx = {k: _show(v, quote=False) for k, v in (error.get("ctx") or {}).items()}
    if kind == "extra_forbidden" and len(error["loc"]) == 1:
        return "unknown section"
    return template.format(**ctx)


def _problem(error: ErrorDetails, sources: Mapping[tuple[str, ...], str]) -> str:
    """Formats one pydantic error as ``section.field: reason, got <value>``."""
    path = _path(error)
    line = f"{path or 'config'}: {_reason(error)}"
    if error["type"] not in _NO_INPUT:
        line += f", got {_show(error['input'])}"
    source = sources.get(tuple(re.split(r"[.\[]", path)[:2]))
    return f"{line} (from {source})" if source else line


def _show(value: object, quote: bool = True) -> str:
    """Renders a value for an error line: YAML-ish, short, and never a private key."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, Decimal | int | float | Path):
        text = str(value)
    elif isinstance(value, str):
        text = repr(value) if quote else value
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(_show(v, quote=False) for v in value) + "]"
    else:
        text = repr(value)
    if _PEM_MARKER in text:
        return "<a private key, not shown>"
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


# --------------------------------------------------------------------------- output


def masked_dump(config: KmmConfig) -> dict[str, Any]:
    """The resolved configuration as JSON-compatible data, with the key id and the webhook's
    path masked.

    Decimals come out as strings (exact), paths as strings, tuples as lists; loading the result
    back gives the same configuration apart from the masked key id.
    """
    data = config.model_dump(mode="json")
    data["auth"]["key_id"] = mask_key_id(config.auth.key_id)
    webhook = config.ops.webhook_url
    if webhook is not None:  # a Slack or Discord webhook's path is its secret
        parts = urlsplit(webhook)
        data["ops"]["webhook_url"] = f"{parts.scheme}://{parts.netloc}/…"
    return data


_EXAMPLE_HEADER: Final = """\
# kmm configuration: every option, with its default value.
#
# Generated from the field descriptions in src/kmm/config.py; regenerate with
#   python -m kmm.config > config.example.yaml
#
# An empty file is a valid configuration for the local exchange (venue.env: sim).
# Any field can be overridden from the environment as KMM__SECTION__FIELD, read as YAML:
#   KMM__STRATEGY__GAMMA=0.2  KMM__MARKETS__TICKERS=[KXA-26AUG20,KXB-26AUG20]
# Units are in the names: _s seconds, _ms milliseconds, _cents cents of YES price (steps of
# 0.01¢), _contracts contracts (steps of 0.01), _dollars dollars (steps of $0.0001).
# Secrets never go in this file: auth names a key file or an environment variable."""

_PLAIN = re.compile(r"[A-Za-z0-9_./-]+")


def _yaml_value(value: object) -> str:
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, bool) or value is None:
        return _show(value)
    if isinstance(value, Decimal | int | float):
        return str(value)
    text = str(value)
    plain = _PLAIN.fullmatch(text) and yaml.load(text, Loader=_Loader) == text
    return text if plain else json.dumps(text)


_BOUNDS: Final = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
_KEEP = "\x00"  # a space that textwrap must not break at


def _constraints(info: FieldInfo) -> str:
    notes = [
        f"{op}{_KEEP}{_show(getattr(meta, attr))}"
        for meta in info.metadata
        for attr, op in _BOUNDS
        if getattr(meta, attr, None) is not None
    ]
    text = f" Must{_KEEP}be{_KEEP}{' and '.join(notes)}." if notes else ""
    if get_origin(info.annotation) is Literal:
        text += " One of: " + ", ".join(str(c) for c in get_args(info.annotation)) + "."
    return text


def _comment(text: str, indent: str) -> list[str]:
    width = 100 - len(indent) - 2
    return [f"{indent}# {line.replace(_KEEP, ' ')}" for line in textwrap.wrap(text, width)]


def _section_lines(name: str, section: _Section) -> list[str]:
    lines = ["", *_comment((type(section).__doc__ or "").strip(), ""), f"{name}:"]
    for field, info in type(section).model_fields.items():
        lines += _comment((info.description or "") + _constraints(info), "  ")
        lines.append(f"  {field}: {_yaml_value(getattr(section, field))}")
    return lines


def render_example() -> str:
    """The text of ``config.example.yaml``: every field, its description and its default."""
    defaults = KmmConfig()
    lines = _EXAMPLE_HEADER.splitlines()
    for name in KmmConfig.model_fields:
        lines += _section_lines(name, getattr(defaults, name))
    return "\n".join(lines) + "\n"


def _main(argv: Sequence[str]) -> int:
    if argv:
        sys.stderr.write("usage: python -m kmm.config > config.example.yaml\n")
        return 2
    sys.stdout.write(render_example())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
