"""Discovery: which open markets are worth quoting, and how much risk each gets (pure).

Theory of operation
-------------------
The input is one :class:`MarketView` per open market: what ``GET /markets``, ``GET /series``,
``GET /markets/trades`` and ``GET /markets/orderbooks`` say about it (the shell in
:mod:`kmm.select.reader` builds them). Nothing here does I/O or reads a clock: ``now_ns`` is
passed in.

1. **Filters** (:func:`refusal`) drop a market with the first reason that applies: not
   binary, a multivariate combo, too young (``min_age_s``), closing outside its category's
   time-to-close window, in an excluded category, too little 24 h volume or too few recent
   trades, no two-sided book, a spread wider than ``max_spread``, too little depth at the
   top, or a mid in a hard extreme-price band.
2. **Features** of each kept market: 24 h volume, recent volume, top-of-book depth (both
   sides, ``depth_levels`` levels each), spread and a time penalty (1 at ``penalty_days[0]``
   days or less to the close, 0 at ``penalty_days[1]`` or more, linear between). Each
   feature but the penalty is min–max normalised over the kept markets (all equal: 0).
3. **Score** = Σ weight × normalised feature, with the weights of :class:`ScoreWeights`
   (spread and time penalty count against). Every scored market keeps its features and the
   two features that moved its score most, as readable reasons.
4. **Selection**: the ``top_n`` best scores (ties by ticker).
5. **Budget** (:func:`budgets`): each selected market's position cap in contracts,
   ``alpha · √(depth in contracts)``, capped by ``per_market_cap``, by ``global_cap``
   shared equally among the selected markets and by ``category_cap`` shared equally among
   the selected markets of the category; then halved (``soft_haircut``) in a soft
   extreme-price band and cut by ``long_dated_haircut`` when the close is more than
   ``long_dated_days`` away; whole contracts, at least ``min_cap``. A market whose cap
   would fall below ``min_cap`` is dropped from the selection.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from kmm.types import QTY_SCALE, Price, Qty

__all__ = [
    "Budget",
    "DiscoveryParams",
    "MarketView",
    "ScoreWeights",
    "Scored",
    "budgets",
    "discover",
    "refusal",
    "score_markets",
]

_NS_PER_S: Final = 1_000_000_000
_DAY_S: Final = 86_400.0
DEFAULT_WINDOW: Final = "default"
"""The key of :attr:`DiscoveryParams.close_windows` that applies to unlisted categories."""


@dataclass(frozen=True, slots=True)
class MarketView:
    """What discovery knows of one open market.

    Attributes:
        ticker: The market.
        event_ticker: Its event.
        series_ticker: Its series.
        category: Its series' category ("" if unknown).
        market_type: ``binary`` or ``scalar``.
        combo: Whether it is a multivariate combo (``mve_collection_ticker`` set).
        created_ns: When it was created, or ``None`` if unknown.
        close_ns: When it closes, or ``None`` if unknown.
        volume_24h: Contracts traded in the last day (0.01 contracts).
        recent_trades: Public trades in the recent window the shell read.
        recent_volume: Contracts in those trades (0.01 contracts).
        yes_bid: The best YES bid of the order book, or ``None``.
        yes_ask: The best YES ask of the order book, or ``None``.
        bid_depth: Size on the best ``depth_levels`` YES bid levels (0.01 contracts).
        ask_depth: Size on the best ``depth_levels`` YES ask levels (0.01 contracts).
    """

    ticker: str
    event_ticker: str
    series_ticker: str
    category: str
    market_type: str
    combo: bool
    created_ns: int | None
    close_ns: int | None
    volume_24h: Qty
    recent_trades: int
    recent_volume: Qty
    yes_bid: Price | None
    yes_ask: Price | None
    bid_depth: Qty
    ask_depth: Qty

    @property
    def spread(self) -> Price | None:
        """The book's spread, or ``None`` when a side is empty."""
        if self.yes_bid is None or self.yes_ask is None:
            return None
        return self.yes_ask - self.yes_bid

    @property
    def mid2(self) -> Price | None:
        """Twice the mid (exact), or ``None`` when a side is empty."""
        if self.yes_bid is None or self.yes_ask is None:
            return None
        return self.yes_bid + self.yes_ask

    @property
    def depth(self) -> Qty:
        """Both sides' top-of-book depth."""
        return self.bid_depth + self.ask_depth


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """How much each normalised feature counts (spread and time penalty count against)."""

    volume_24h: float = 0.30
    recent_volume: float = 0.25
    depth: float = 0.20
    spread: float = -0.15
    time_penalty: float = -0.10

    def items(self) -> tuple[tuple[str, float], ...]:
        """``(feature, weight)`` pairs, in a fixed order."""
        return (
            ("volume_24h", self.volume_24h),
            ("recent_volume", self.recent_volume),
            ("depth", self.depth),
            ("spread", self.spread),
            ("time_penalty", self.time_penalty),
        )


@dataclass(frozen=True, slots=True)
class DiscoveryParams:
    """Filters, weights and budget caps of discovery (prices in $0.0001, sizes in 0.01).

    Attributes:
        min_age_s: A market younger than this is skipped (new books are unreliable).
        close_windows: Per category, the allowed seconds to the close ``(least, most)``;
            :data:`DEFAULT_WINDOW` covers the categories not listed.
        exclude_categories: Categories never traded.
        min_volume_24h: Least 24 h volume.
        min_recent_trades: Least public trades in the recent window.
        max_spread: Widest book spread.
        min_depth: Least size on each side's top ``depth_levels`` levels.
        hard_low: A mid below this is in the hard low band: skipped.
        hard_high: A mid above this is in the hard high band: skipped.
        soft_low: A mid below this (and above ``hard_low``) gets ``soft_haircut``.
        soft_high: A mid above this (and below ``hard_high``) gets ``soft_haircut``.
        weights: The score's weights.
        penalty_days: ``(full, none)``: the time penalty is 1 at ``full`` days or less to the
            close and 0 at ``none`` or more.
        top_n: How many markets are selected.
        alpha: The budget's scale: contracts of cap per √contract of depth.
        per_market_cap: Largest cap of one market, in contracts.
        category_cap: Largest sum of the caps of one category, in contracts.
        global_cap: Largest sum of all caps, in contracts.
        min_cap: The least useful cap, in contracts (below it a market is dropped).
        soft_haircut: The factor on the cap in a soft extreme-price band.
        long_dated_days: A close further than this many days away is long-dated.
        long_dated_haircut: The factor on a long-dated market's cap.
        incumbent_margin: At a rescoring, a market already chosen ranks as if its score were
            this much higher, so a newcomer replaces it only when it scores better by more
            than this (rankings move with every trade; without it the choice churns).
    """

    min_age_s: float = 60.0
    close_windows: Mapping[str, tuple[float, float]] = field(
        default_factory=lambda: {DEFAULT_WINDOW: (3600.0, 60 * _DAY_S)}
    )
    exclude_categories: tuple[str, ...] = ()
    min_volume_24h: Qty = 0
    min_recent_trades: int = 0
    max_spread: Price = 1000
    min_depth: Qty = QTY_SCALE
    hard_low: Price = 500
    hard_high: Price = 9500
    soft_low: Price = 1500
    soft_high: Price = 8500
    weights: ScoreWeights = field(default_factory=ScoreWeights)
    penalty_days: tuple[float, float] = (1.0, 60.0)
    top_n: int = 10
    alpha: float = 2.0
    per_market_cap: int = 50
    category_cap: int = 100
    global_cap: int = 300
    min_cap: int = 1
    soft_haircut: float = 0.5
    long_dated_days: float = 30.0
    long_dated_haircut: float = 0.7
    incumbent_margin: float = 0.05

    def window(self, category: str) -> tuple[float, float]:
        """The time-to-close window of ``category``."""
        found = self.close_windows.get(category)
        if found is not None:
            return found
        return self.close_windows.get(DEFAULT_WINDOW, (0.0, math.inf))


@dataclass(frozen=True, slots=True)
class Scored:
    """One market's place in a discovery.

    Attributes:
        view: The market.
        score: Its score (``None`` when refused).
        features: The normalised features (raw for ``time_penalty``), by name.
        reasons: Why it scored as it did, or why it was refused.
        selected: Whether discovery chose it.
    """

    view: MarketView
    score: float | None
    features: Mapping[str, float]
    reasons: tuple[str, ...]
    selected: bool = False

    @property
    def ticker(self) -> str:
        """The market's ticker."""
        return self.view.ticker


@dataclass(frozen=True, slots=True)
class Budget:
    """A selected market's risk budget and the factors behind it.

    Attributes:
        ticker: The market.
        max_position: The position cap, in 0.01 contracts (whole contracts).
        reasons: How it was reached (which cap bound, which haircut applied).
    """

    ticker: str
    max_position: Qty
    reasons: tuple[str, ...]


def refusal(view: MarketView, params: DiscoveryParams, now_ns: int) -> str | None:
    """Why ``view`` is not a candidate, or ``None`` if it passes every filter."""
    for check in _CHECKS:
        reason = check(view, params, now_ns)
        if reason is not None:
            return reason
    return None


def _kind(view: MarketView, params: DiscoveryParams, now_ns: int) -> str | None:
    if view.combo:
        return "multivariate combo"
    if view.market_type != "binary":
        return f"{view.market_type} market"
    return None


def _age(view: MarketView, params: DiscoveryParams, now_ns: int) -> str | None:
    if view.created_ns is None:
        return None
    age_s = (now_ns - view.created_ns) / _NS_PER_S
    if age_s < params.min_age_s:
        return f"created {age_s:.0f}s ago (min_age_s {params.min_age_s:g})"
    return None


def _close(view: MarketView, params: DiscoveryParams, now_ns: int) -> str | None:
    if view.close_ns is None:
        return "no close time"
    least, most = params.window(view.category)
    to_close = (view.close_ns - now_ns) / _NS_PER_S
    if not least <= to_close <= most:
        return (
            f"closes in {_duration(to_close)}, outside {view.category or DEFAULT_WINDOW}'s "
            f"window {_duration(least)}..{_duration(most)}"
        )
    return None


def _category(view: MarketView, params: DiscoveryParams, now_ns: int) -> str | None:
    if view.category in params.exclude_categories:
        return f"category {view.category} excluded"
    return None


def _activity(view: MarketView, params: DiscoveryParams, now_ns: int) -> str | None:
    if view.volume_24h < params.min_volume_24h:
        return (
            f"24h volume {view.volume_24h // QTY_SCALE} < "
            f"min_volume_24h {params.min_volume_24h // QTY_SCALE}"
        )
    if view.recent_trades < params.min_recent_trades:
        return f"{view.recent_trades} recent trades < min_recent_trades {params.min_recent_trades}"
    return None


def _book(view: MarketView, params: DiscoveryParams, now_ns: int) -> str | None:
    spread = view.spread
    mid2 = view.mid2
    if spread is None or mid2 is None:
        return "one-sided book"
    if spread > params.max_spread:
        return f"spread {_cents(spread)} > max_spread {_cents(params.max_spread)}"
    if min(view.bid_depth, view.ask_depth) < params.min_depth:
        return (
            f"depth {min(view.bid_depth, view.ask_depth) / QTY_SCALE:g} < "
            f"min_depth {params.min_depth / QTY_SCALE:g}"
        )
    if mid2 < 2 * params.hard_low or mid2 > 2 * params.hard_high:
        return f"mid {_cents(mid2 / 2)} in a hard extreme-price band"
    return None


_CHECKS: Final = (_kind, _age, _close, _category, _activity, _book)


def _time_penalty(view: MarketView, params: DiscoveryParams, now_ns: int) -> float:
    if view.close_ns is None:
        return 1.0
    days = (view.close_ns - now_ns) / _NS_PER_S / _DAY_S
    full, none = params.penalty_days
    if days <= full:
        return 1.0
    if days >= none:
        return 0.0
    return (none - days) / (none - full)


def _raw_features(view: MarketView) -> dict[str, float]:
    return {
        "volume_24h": view.volume_24h / QTY_SCALE,
        "recent_volume": view.recent_volume / QTY_SCALE,
        "depth": view.depth / QTY_SCALE,
        "spread": float(view.spread or 0),
    }


def _normalised(rows: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    out: list[dict[str, float]] = [{} for _ in rows]
    for name in ("volume_24h", "recent_volume", "depth", "spread"):
        values = [row[name] for row in rows]
        low, high = min(values), max(values)
        for index, value in enumerate(values):
            out[index][name] = 0.0 if high == low else (value - low) / (high - low)
    return out


def score_markets(
    views: Iterable[MarketView], params: DiscoveryParams, now_ns: int
) -> list[Scored]:
    """Filters, scores and ranks ``views``: the kept markets best first, then the refused.

    Every market comes back once, with its score and reasons (refused ones with the reason
    and no score); none is marked selected (see :func:`discover`).
    """
    kept: list[MarketView] = []
    refused: list[Scored] = []
    for view in views:
        reason = refusal(view, params, now_ns)
        if reason is None:
            kept.append(view)
        else:
            refused.append(Scored(view, None, {}, (reason,)))
    rows = _normalised([_raw_features(v) for v in kept]) if kept else []
    scored = []
    for view, features in zip(kept, rows, strict=True):
        features["time_penalty"] = _time_penalty(view, params, now_ns)
        parts = [(name, weight * features[name]) for name, weight in params.weights.items()]
        score = sum(part for _, part in parts)
        scored.append(Scored(view, score, features, _reasons(parts)))
    scored.sort(key=lambda s: (-(s.score or 0.0), s.ticker))
    refused.sort(key=lambda s: s.ticker)
    return scored + refused


def _reasons(parts: Sequence[tuple[str, float]]) -> tuple[str, ...]:
    """The two features that moved the score most, e.g. ``volume_24h +0.27``."""
    ranked = sorted(parts, key=lambda p: (-abs(p[1]), p[0]))[:2]
    return tuple(f"{name} {part:+.2f}" for name, part in ranked if part)


def discover(
    views: Iterable[MarketView],
    params: DiscoveryParams,
    now_ns: int,
    incumbents: Collection[str] = (),
) -> tuple[list[Scored], dict[str, Budget]]:
    """Scores every market, selects the best ``top_n`` and budgets them.

    Args:
        views: Every market's view.
        params: Filters, weights and caps.
        now_ns: The time of the views.
        incumbents: The markets chosen at the last scoring: they rank with
            ``incumbent_margin`` added to their score (their score itself is unchanged).

    Returns:
        Every market as :func:`score_markets` ranks it, the selected ones marked, and the
        budget of each selected market by ticker (a market whose budget fell below
        ``min_cap`` is not selected).
    """
    ranked = score_markets(views, params, now_ns)
    scored = [s for s in ranked if s.score is not None]
    if incumbents:
        held = set(incumbents)
        margin = params.incumbent_margin
        scored.sort(key=lambda s: -((s.score or 0.0) + (margin if s.ticker in held else 0.0)))
    best = scored[: params.top_n]
    budget = budgets([s.view for s in best], params, now_ns)
    return [
        Scored(s.view, s.score, s.features, s.reasons, s.ticker in budget) for s in ranked
    ], budget


def budgets(
    selected: Sequence[MarketView], params: DiscoveryParams, now_ns: int
) -> dict[str, Budget]:
    """Each market's position cap: ``alpha·√depth`` within the per-market, per-category and
    global caps, with the soft-band and long-dated haircuts (see the module docstring)."""
    if not selected:
        return {}
    per_category = Counter(view.category for view in selected)
    global_share = params.global_cap / len(selected)
    out: dict[str, Budget] = {}
    for view in selected:
        caps = {
            "sqrt_depth": params.alpha * math.sqrt(view.depth / QTY_SCALE),
            "per_market_cap": float(params.per_market_cap),
            "global_cap": global_share,
            "category_cap": params.category_cap / per_category[view.category],
        }
        bound = min(caps, key=lambda name: (caps[name], name))
        cap = caps[bound]
        reasons = [f"{bound} {cap:.1f}"]
        mid2 = view.mid2 or 0
        if mid2 < 2 * params.soft_low or mid2 > 2 * params.soft_high:
            cap *= params.soft_haircut
            reasons.append(f"soft band x{params.soft_haircut:g}")
        days = ((view.close_ns or now_ns) - now_ns) / _NS_PER_S / _DAY_S
        if days > params.long_dated_days:
            cap *= params.long_dated_haircut
            reasons.append(f"long-dated x{params.long_dated_haircut:g}")
        contracts = math.floor(cap)
        if contracts < params.min_cap:
            continue
        out[view.ticker] = Budget(view.ticker, contracts * QTY_SCALE, tuple(reasons))
    return out


def _cents(price: float) -> str:
    return f"{price / 100:g}c"


def _duration(seconds: float) -> str:
    if math.isinf(seconds):
        return "any"
    if abs(seconds) >= _DAY_S:
        return f"{seconds / _DAY_S:.1f}d"
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f}h"
    if abs(seconds) >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"
