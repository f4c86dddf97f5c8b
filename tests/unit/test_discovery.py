"""Discovery's filters, scores and budgets (pure: no venue, time passed in)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.select.discovery import (
    DEFAULT_WINDOW,
    DiscoveryParams,
    MarketView,
    budgets,
    discover,
    refusal,
    score_markets,
)
from kmm.types import QTY_SCALE

S = 1_000_000_000
DAY = 86_400 * S
NOW = 1_795_000_000 * S


def view(ticker: str = "KXA-26DEC10-T50", **changes: object) -> MarketView:
    base = MarketView(
        ticker=ticker,
        event_ticker="KXA-26DEC10",
        series_ticker="KXA",
        category="Economics",
        market_type="binary",
        combo=False,
        created_ns=NOW - 10 * DAY,
        close_ns=NOW + 5 * DAY,
        volume_24h=1000 * QTY_SCALE,
        recent_trades=10,
        recent_volume=50 * QTY_SCALE,
        yes_bid=4800,
        yes_ask=5100,
        bid_depth=40 * QTY_SCALE,
        ask_depth=60 * QTY_SCALE,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


PARAMS = DiscoveryParams()


def test_a_plain_liquid_market_passes_every_filter() -> None:
    assert refusal(view(), PARAMS, NOW) is None


def test_each_filter_names_what_refused_the_market() -> None:
    cases = {
        "multivariate combo": view(combo=True),
        "scalar market": view(market_type="scalar"),
        "created 30s ago": view(created_ns=NOW - 30 * S),
        "closes in 30m": view(close_ns=NOW + 1800 * S),
        "closes in 90.0d": view(close_ns=NOW + 90 * DAY),
        "one-sided book": view(yes_ask=None),
        "spread 12c > max_spread 10c": view(yes_bid=4000, yes_ask=5200),
        "depth 0.5 < min_depth 1": view(bid_depth=50),
        "mid 3c in a hard extreme-price band": view(yes_bid=200, yes_ask=400),
    }
    for expected, market in cases.items():
        reason = refusal(market, PARAMS, NOW)
        assert reason is not None and reason.startswith(expected), (expected, reason)


def test_categories_have_their_own_windows_and_can_be_excluded() -> None:
    sports = view(category="Sports", close_ns=NOW + 10 * DAY)
    windows = {DEFAULT_WINDOW: (3600.0, 60 * 86_400.0), "Sports": (3600.0, 7 * 86_400.0)}
    params = DiscoveryParams(close_windows=windows)

    assert refusal(sports, params, NOW) == "closes in 10.0d, outside Sports's window 1.0h..7.0d"
    assert refusal(view(close_ns=NOW + 10 * DAY), params, NOW) is None
    excluded = DiscoveryParams(exclude_categories=("Sports",))
    assert refusal(sports, excluded, NOW) == "category Sports excluded"


def test_volume_and_recent_trade_floors() -> None:
    params = DiscoveryParams(min_volume_24h=5000 * QTY_SCALE, min_recent_trades=20)

    assert refusal(view(), params, NOW) == "24h volume 1000 < min_volume_24h 5000"
    busy = view(volume_24h=6000 * QTY_SCALE)
    assert refusal(busy, params, NOW) == "10 recent trades < min_recent_trades 20"


def test_more_volume_and_depth_and_a_tighter_spread_score_higher() -> None:
    quiet = view("Q", volume_24h=10 * QTY_SCALE, recent_volume=0, bid_depth=QTY_SCALE)
    busy = view("B", volume_24h=9000 * QTY_SCALE, recent_volume=500 * QTY_SCALE)
    wide = view("W", yes_bid=4500, yes_ask=5400)

    ranked = score_markets([quiet, wide, busy], PARAMS, NOW)

    assert [s.ticker for s in ranked] == ["B", "W", "Q"]
    assert ranked[0].reasons[0].startswith("volume_24h +")
    assert all(0.0 <= f <= 1.0 for s in ranked for f in s.features.values())


def test_a_close_in_less_than_a_day_costs_the_full_time_penalty() -> None:
    near = view("N", close_ns=NOW + 2 * 3600 * S)
    far = view("F", close_ns=NOW + 59 * DAY)

    ranked = {s.ticker: s for s in score_markets([near, far], PARAMS, NOW)}

    assert ranked["N"].features["time_penalty"] == 1.0
    assert 0.0 < ranked["F"].features["time_penalty"] < 0.02
    assert (ranked["N"].score or 0) < (ranked["F"].score or 0)


def test_refused_markets_come_back_last_with_their_reason_and_no_score() -> None:
    ranked = score_markets([view("A", combo=True), view("B")], PARAMS, NOW)

    assert [(s.ticker, s.score is None) for s in ranked] == [("B", False), ("A", True)]
    assert ranked[1].reasons == ("multivariate combo",)


def test_discover_selects_the_top_n_and_budgets_only_them() -> None:
    markets = [view(f"M{i}", volume_24h=(i + 1) * 100 * QTY_SCALE) for i in range(6)]
    params = DiscoveryParams(top_n=3)

    ranked, budget = discover(markets, params, NOW)

    chosen = [s.ticker for s in ranked if s.selected]
    assert chosen == ["M5", "M4", "M3"]
    assert set(budget) == set(chosen)


def test_an_incumbent_is_kept_unless_a_newcomer_beats_it_by_the_margin() -> None:
    close = [view("NEW", volume_24h=1010 * QTY_SCALE), view("OLD", volume_24h=1000 * QTY_SCALE)]
    far = [view("NEW", volume_24h=3000 * QTY_SCALE), view("OLD", volume_24h=1000 * QTY_SCALE)]
    others = [view(f"M{i}", volume_24h=100 * QTY_SCALE) for i in range(3)]
    params = DiscoveryParams(top_n=1, incumbent_margin=0.05)

    def chosen(markets: list[MarketView], incumbents: tuple[str, ...]) -> list[str]:
        ranked, _ = discover([*markets, *others], params, NOW, incumbents)
        return [s.ticker for s in ranked if s.selected]

    assert chosen(close, ()) == ["NEW"]  # without an incumbent: the best score
    assert chosen(close, ("OLD",)) == ["OLD"]  # a little better is not enough
    assert chosen(far, ("OLD",)) == ["NEW"]  # much better replaces it
    ranked, _ = discover([*close, *others], params, NOW, ("OLD",))
    assert [s.ticker for s in ranked][:2] == ["NEW", "OLD"]  # scores themselves unchanged


def test_the_budget_grows_with_the_square_root_of_depth_within_the_caps() -> None:
    shallow = view("S", bid_depth=8 * QTY_SCALE, ask_depth=8 * QTY_SCALE)  # sqrt 4 -> 8
    deep = view("D", category="Crypto", bid_depth=2000 * QTY_SCALE, ask_depth=2000 * QTY_SCALE)

    budget = budgets([shallow, deep], PARAMS, NOW)

    assert budget["S"].max_position == 8 * QTY_SCALE
    assert budget["S"].reasons == ("sqrt_depth 8.0",)
    assert budget["D"].max_position == 50 * QTY_SCALE  # per_market_cap
    assert budget["D"].reasons == ("per_market_cap 50.0",)


def test_category_and_global_caps_are_shared_among_the_chosen() -> None:
    deep = {"bid_depth": 5000 * QTY_SCALE, "ask_depth": 5000 * QTY_SCALE}
    same = [view(f"E{i}", **deep) for i in range(4)]
    params = DiscoveryParams(category_cap=100, global_cap=1000)

    assert {b.max_position for b in budgets(same, params, NOW).values()} == {25 * QTY_SCALE}
    spread = [view(f"C{i}", category=f"Cat{i}", **deep) for i in range(10)]
    tight = DiscoveryParams(global_cap=200)
    assert {b.max_position for b in budgets(spread, tight, NOW).values()} == {20 * QTY_SCALE}


def test_soft_band_and_long_dated_haircuts_and_the_least_useful_cap() -> None:
    soft = view(
        "SOFT", yes_bid=1000, yes_ask=1200, bid_depth=50 * QTY_SCALE, ask_depth=50 * QTY_SCALE
    )
    far = view("FAR", close_ns=NOW + 45 * DAY, bid_depth=50 * QTY_SCALE, ask_depth=50 * QTY_SCALE)
    tiny = view("TINY", bid_depth=QTY_SCALE // 10, ask_depth=QTY_SCALE // 10)

    budget = budgets([soft, far, tiny], PARAMS, NOW)

    assert budget["SOFT"].max_position == 10 * QTY_SCALE  # 20 x 0.5
    assert budget["FAR"].max_position == 14 * QTY_SCALE  # 20 x 0.7
    assert "long-dated x0.7" in budget["FAR"].reasons
    assert "TINY" not in budget  # sqrt(0.2) x 2 < 1 contract


depths = st.integers(min_value=0, max_value=10_000 * QTY_SCALE)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(depths, st.sampled_from(["A", "B", "C"])), min_size=1, max_size=25),
    st.integers(1, 80),
    st.integers(1, 200),
    st.integers(1, 500),
)
def test_no_budget_exceeds_any_cap(
    rows: list[tuple[int, str]], per_market: int, per_category: int, total: int
) -> None:
    markets = [
        view(f"M{i}", category=cat, bid_depth=depth, ask_depth=depth)
        for i, (depth, cat) in enumerate(rows)
    ]
    params = DiscoveryParams(per_market_cap=per_market, category_cap=per_category, global_cap=total)

    budget = budgets(markets, params, NOW)

    caps = [b.max_position for b in budget.values()]
    assert all(cap <= per_market * QTY_SCALE and cap % QTY_SCALE == 0 for cap in caps)
    assert sum(caps) <= total * QTY_SCALE
    for cat in ("A", "B", "C"):
        in_cat = [
            b.max_position
            for m in markets
            if m.category == cat
            for b in [budget.get(m.ticker)]
            if b
        ]
        assert sum(in_cat) <= per_category * QTY_SCALE
