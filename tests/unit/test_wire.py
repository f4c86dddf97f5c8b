from __future__ import annotations

import pathlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.errors import WireError
from kmm.kalshi.wire import (
    BookDelta,
    BookSnapshot,
    ErrorMsg,
    MarketLifecycle,
    MarketPosition,
    Ok,
    Subscribed,
    Ticker,
    Trade,
    Unsubscribed,
    UserOrder,
    WireDecoder,
    parse_levels,
    parse_price_ranges,
)
from kmm.types import ONE_DOLLAR, BookSide, Fill, Outcome, format_count, format_price

DATA = pathlib.Path(__file__).parent.parent / "data" / "ws"


def sample(name: str) -> bytes:
    return (DATA / f"{name}.json").read_bytes()


def sample_obj(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = orjson.loads(sample(name))
    return obj


def decode(obj: dict[str, Any], use_yes_price: bool = False) -> object:
    return WireDecoder(use_yes_price).decode(orjson.dumps(obj))


def with_msg(name: str, **fields: Any) -> dict[str, Any]:
    """A sample with some ``msg`` fields replaced (``None`` removes the field)."""
    obj = sample_obj(name)
    for key, value in fields.items():
        if value is None:
            obj["msg"].pop(key, None)
        else:
            obj["msg"][key] = value
    return obj


def wire_error(obj: dict[str, Any] | bytes, use_yes_price: bool = False) -> WireError:
    frame = obj if isinstance(obj, bytes) else orjson.dumps(obj)
    with pytest.raises(WireError) as info:
        WireDecoder(use_yes_price).decode(frame)
    return info.value


# --------------------------------------------------------------------------- order book


def test_a_snapshot_with_both_sides_gives_bids_in_each_legs_own_price() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("orderbook_snapshot"))

    assert event == BookSnapshot(
        sid=2,
        seq=2,
        ticker="FED-23DEC-T3.00",
        yes=[(800, 30000), (2200, 33300)],
        no=[(5400, 2000), (5600, 14600)],
    )


@pytest.mark.parametrize(
    ("name", "yes", "no"),
    [
        ("orderbook_snapshot.yes_only", [(800, 30000), (2200, 33300)], []),
        ("orderbook_snapshot.no_only", [], [(5400, 2000), (5600, 14600)]),
        ("orderbook_snapshot.empty", [], []),
    ],
)
def test_a_snapshot_side_absent_from_the_frame_is_an_empty_side(
    name: str, yes: list[tuple[int, int]], no: list[tuple[int, int]]
) -> None:
    event = WireDecoder(use_yes_price=False).decode(sample(name))

    assert isinstance(event, BookSnapshot)
    assert (event.yes, event.no) == (yes, no)


def test_a_yes_price_snapshot_converts_no_levels_back_to_no_prices_in_ascending_order() -> None:
    default = WireDecoder(use_yes_price=False).decode(sample("orderbook_snapshot"))

    converted = WireDecoder(use_yes_price=True).decode(sample("orderbook_snapshot.yes_price"))

    assert converted == default
    assert isinstance(converted, BookSnapshot)
    assert converted.no == sorted(converted.no)


def test_yes_price_no_levels_sent_in_descending_order_still_come_out_ascending() -> None:
    obj = sample_obj("orderbook_snapshot.yes_price")
    obj["msg"]["no_dollars_fp"].reverse()

    event = decode(obj, use_yes_price=True)

    assert isinstance(event, BookSnapshot)
    assert event.no == [(5400, 2000), (5600, 14600)]


def test_a_delta_without_client_order_id_carries_none() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("orderbook_delta"))

    assert event == BookDelta(
        sid=2,
        seq=3,
        ticker="FED-23DEC-T3.00",
        side=Outcome.YES,
        price=9600,
        delta=-5400,
        client_order_id=None,
        ts_ms=1669149841000,
    )


def test_a_delta_caused_by_our_order_carries_its_client_order_id() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("orderbook_delta.own_order"))

    assert isinstance(event, BookDelta)
    assert event.client_order_id == "kmm-7f3a-000042"
    assert (event.side, event.price, event.delta) == (Outcome.YES, 4200, 1000)


def test_both_price_conventions_give_the_same_no_delta() -> None:
    default = WireDecoder(use_yes_price=False).decode(sample("orderbook_delta.no"))

    converted = WireDecoder(use_yes_price=True).decode(sample("orderbook_delta.no.yes_price"))

    assert default == converted
    assert isinstance(converted, BookDelta)
    assert (converted.side, converted.price, converted.delta) == (Outcome.NO, 3000, 1250)


def test_the_yes_price_convention_leaves_yes_deltas_alone_even_at_a_cached_price() -> None:
    decoder = WireDecoder(use_yes_price=True)
    no = with_msg("orderbook_delta.no", price_dollars="0.3000")
    yes = with_msg("orderbook_delta.no", price_dollars="0.3000", side="yes")

    first = decoder.decode(orjson.dumps(no))
    second = decoder.decode(orjson.dumps(yes))

    assert isinstance(first, BookDelta)
    assert isinstance(second, BookDelta)
    assert (first.side, first.price) == (Outcome.NO, 7000)
    assert (second.side, second.price) == (Outcome.YES, 3000)


def test_a_text_frame_decodes_like_a_binary_one() -> None:
    decoder = WireDecoder(use_yes_price=False)

    event = decoder.decode(sample("orderbook_delta").decode())

    assert event == decoder.decode(sample("orderbook_delta"))


def level_lists(highest: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    return st.lists(
        st.tuples(st.integers(1, highest), st.integers(1, 10**9)),
        max_size=30,
        unique_by=lambda level: level[0],
    ).map(sorted)


# A YES bid and a NO bid adding up to $1 or more would have matched: books never cross
@settings(max_examples=150)
@given(yes=level_lists(ONE_DOLLAR // 2 - 1), no=level_lists(ONE_DOLLAR // 2))
def test_levels_round_trip_through_kalshi_strings_under_both_conventions(
    yes: list[tuple[int, int]], no: list[tuple[int, int]]
) -> None:
    def side(levels: list[tuple[int, int]]) -> list[list[str]]:
        return [[format_price(p), format_count(q)] for p, q in levels]

    default = {"market_ticker": "M", "yes_dollars_fp": side(yes), "no_dollars_fp": side(no)}
    as_yes = [(ONE_DOLLAR - p, q) for p, q in reversed(no)]
    yes_priced = {"market_ticker": "M", "yes_dollars_fp": side(yes), "no_dollars_fp": side(as_yes)}

    for msg, use_yes_price in ((default, False), (yes_priced, True)):
        frame = {"type": "orderbook_snapshot", "sid": 1, "seq": 1, "msg": msg}
        event = decode(frame, use_yes_price)
        assert event == BookSnapshot(1, 1, "M", yes, no)


@settings(max_examples=150)
@given(price=st.integers(1, ONE_DOLLAR - 1), size=st.integers(-(10**9), 10**9))
def test_a_no_delta_decodes_to_the_same_ints_under_both_conventions(price: int, size: int) -> None:
    default = with_msg("orderbook_delta.no", price_dollars=format_price(price))
    default["msg"]["delta_fp"] = format_count(size)
    yes_priced = with_msg("orderbook_delta.no", price_dollars=format_price(ONE_DOLLAR - price))
    yes_priced["msg"]["delta_fp"] = format_count(size)

    first = decode(default, use_yes_price=False)
    second = decode(yes_priced, use_yes_price=True)

    assert isinstance(first, BookDelta)
    assert first == second
    assert (first.price, first.delta) == (price, size)


# --------------------------------------------------------------------------- market data


def test_a_ticker_converts_prices_and_sizes() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("ticker"))

    assert event == Ticker(
        ticker="FED-23DEC-T3.00",
        price=4800,
        yes_bid=4500,
        yes_ask=5300,
        yes_bid_qty=30000,
        yes_ask_qty=15000,
        last_trade_qty=2500,
        volume=3389600,
        open_interest=2042200,
        ts_ms=1669149841000,
    )


def test_a_current_trade_takes_its_direction_from_taker_book_side() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("trade"))

    assert event == Trade(
        trade_id="d91bc706-ee49-470d-82d8-11418bda6fed",
        ticker="HIGHNY-22DEC23-B53.5",
        yes_price=3600,
        qty=13600,
        taker_book_side=BookSide.ASK,
        is_block_trade=False,
        ts_ms=1669149841000,
    )


def test_an_old_trade_with_only_taker_side_still_decodes() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("trade.example"))

    assert isinstance(event, Trade)
    assert (event.taker_book_side, event.yes_price, event.qty) == (BookSide.ASK, 3600, 13600)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"taker_book_side": "bid"}, BookSide.BID),
        ({"taker_outcome_side": "no"}, BookSide.ASK),
        ({"taker_outcome_side": "yes"}, BookSide.BID),
        ({"taker_side": "yes"}, BookSide.BID),
    ],
)
def test_trade_direction_comes_from_whichever_direction_field_is_present(
    fields: dict[str, str], expected: BookSide
) -> None:
    obj = with_msg("trade", taker_book_side=None, taker_outcome_side=None, taker_side=None)
    obj["msg"].update(fields)

    event = decode(obj)

    assert isinstance(event, Trade)
    assert event.taker_book_side is expected


def test_a_lifecycle_creation_carries_close_time_and_no_optional_extras() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("market_lifecycle_v2.created"))

    assert event == MarketLifecycle(
        ticker="INXD-23SEP14-B4487",
        event_type="created",
        close_ts=1694721600,
        price_level_structure="linear_cent",
    )


def test_a_price_structure_update_carries_its_bands_as_price_triples() -> None:
    decoder = WireDecoder(use_yes_price=False)

    deci = decoder.decode(sample("market_lifecycle_v2.price_level_structure_updated"))
    tapered = decoder.decode(sample("market_lifecycle_v2.tapered"))

    assert isinstance(deci, MarketLifecycle)
    assert isinstance(tapered, MarketLifecycle)
    assert deci.price_ranges == ((0, 10000, 10),)
    assert tapered.price_ranges == ((0, 1000, 10), (1000, 9000, 100), (9000, 10000, 10))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "market_lifecycle_v2.determined",
            MarketLifecycle(
                "INXD-23SEP14-B4487", "determined", result="yes", settlement_value=10000
            ),
        ),
        (
            "market_lifecycle_v2.deactivated",
            MarketLifecycle("INXD-23SEP14-B4487", "deactivated", is_deactivated=True),
        ),
        (
            "market_lifecycle_v2.close_date_updated",
            MarketLifecycle("INXD-23SEP14-B4487", "close_date_updated", close_ts=1694718000),
        ),
        (
            "market_lifecycle_v2.metadata_updated",
            MarketLifecycle("KXBTC-25APR30-T0915-B95000", "metadata_updated"),
        ),
    ],
)
def test_lifecycle_events_carry_the_fields_of_their_type(
    name: str, expected: MarketLifecycle
) -> None:
    event = WireDecoder(use_yes_price=False).decode(sample(name))

    assert event == expected


# --------------------------------------------------------------------------- private channels


def test_a_current_fill_becomes_a_fill_on_the_yes_leg() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("fill"))

    assert event == Fill(
        trade_id="d91bc706-ee49-470d-82d8-11418bda6fed",
        order_id="ee587a1c-8b87-4dcf-b721-9f6f790619fa",
        ticker="HIGHNY-22DEC23-B53.5",
        side=BookSide.ASK,
        price=5200,
        qty=100,
        fee=17500,
        is_taker=False,
        ts_ms=1671899397123,
        client_order_id="kmm-7f3a-000042",
        post_position=-400,
    )


def test_an_old_fill_without_fee_cost_has_zero_fee_and_legacy_direction() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("fill.example"))

    assert isinstance(event, Fill)
    assert (event.side, event.price, event.qty, event.fee) == (BookSide.BID, 7500, 27800, 0)
    assert (event.is_taker, event.post_position, event.client_order_id) == (True, 50000, None)


_NO_DIRECTION = {"book_side": None, "outcome_side": None, "purchased_side": None}
_NO_DIRECTION |= {"side": None, "action": None}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"book_side": "bid"}, BookSide.BID),
        ({"book_side": "ask"}, BookSide.ASK),
        ({"outcome_side": "yes"}, BookSide.BID),
        ({"outcome_side": "no"}, BookSide.ASK),
        ({"outcome_side": "yes", "book_side": "bid"}, BookSide.BID),
        ({"outcome_side": "no", "book_side": "ask"}, BookSide.ASK),
        ({"purchased_side": "yes"}, BookSide.BID),
        ({"purchased_side": "no"}, BookSide.ASK),
        ({"action": "buy", "side": "yes"}, BookSide.BID),
        ({"action": "sell", "side": "yes"}, BookSide.ASK),
        ({"action": "buy", "side": "no"}, BookSide.ASK),
        ({"action": "sell", "side": "no"}, BookSide.BID),
        # The canonical field wins over deprecated ones, whatever they say
        ({"book_side": "ask", "action": "buy", "side": "yes"}, BookSide.ASK),
        ({"outcome_side": "yes", "purchased_side": "no"}, BookSide.BID),
        ({"purchased_side": "no", "action": "buy", "side": "yes"}, BookSide.ASK),
    ],
)
def test_fill_direction_follows_the_order_direction_table(
    fields: dict[str, str], expected: BookSide
) -> None:
    obj = with_msg("fill", **_NO_DIRECTION)
    obj["msg"].update(fields)

    event = decode(obj)

    assert isinstance(event, Fill)
    assert event.side is expected


@pytest.mark.parametrize(("book_side", "outcome_side"), [("bid", "no"), ("ask", "yes")])
def test_a_fill_whose_book_side_contradicts_its_outcome_side_is_refused(
    book_side: str, outcome_side: str
) -> None:
    obj = with_msg("fill", book_side=book_side, outcome_side=outcome_side)

    error = wire_error(obj)

    assert error.msg_type == "fill"
    assert "book_side" in error.reason and "outcome_side" in error.reason


def test_a_fill_with_no_direction_field_at_all_is_refused() -> None:
    error = wire_error(with_msg("fill", **_NO_DIRECTION))

    assert error.msg_type == "fill"
    assert "book_side" in error.reason


@pytest.mark.parametrize(
    "fields",
    [{"book_side": "buy"}, {"outcome_side": "maybe"}, {"action": "hold", "side": "yes"}],
)
def test_a_fill_with_an_unknown_direction_value_is_refused_naming_the_field(
    fields: dict[str, str],
) -> None:
    obj = with_msg("fill", **_NO_DIRECTION)
    obj["msg"].update(fields)

    error = wire_error(obj)

    assert any(key in error.reason for key in fields)


def test_a_current_user_order_carries_yes_leg_side_price_and_counts() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("user_order"))

    assert event == UserOrder(
        order_id="ee587a1c-8b87-4dcf-b721-9f6f790619fa",
        client_order_id="kmm-7f3a-000043",
        ticker="FED-23DEC-T3.00",
        status="resting",
        side=BookSide.ASK,
        price=6500,
        fill_count=200,
        remaining_count=800,
        initial_count=1000,
        ts_ms=1787220001250,
    )


def test_an_old_user_order_takes_side_as_the_outcome_and_creation_time_as_its_time() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("user_order.example"))

    assert isinstance(event, UserOrder)
    assert (event.side, event.price, event.ts_ms) == (BookSide.BID, 3500, 1733047200000)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"side": "no"}, BookSide.ASK),
        ({"is_yes": True}, BookSide.BID),
        ({"is_yes": False}, BookSide.ASK),
        ({"side": "yes", "action": "sell"}, BookSide.ASK),
        ({"book_side": "bid", "side": "no"}, BookSide.BID),
    ],
)
def test_user_order_direction_falls_back_through_the_deprecated_fields(
    fields: dict[str, Any], expected: BookSide
) -> None:
    obj = with_msg("user_order", book_side=None, outcome_side=None, side=None, is_yes=None)
    obj["msg"].update(fields)

    event = decode(obj)

    assert isinstance(event, UserOrder)
    assert event.side is expected


def test_a_market_position_keeps_money_to_the_millionth_of_a_dollar() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("market_position"))

    assert event == MarketPosition(
        ticker="FED-23DEC-T3.00",
        position=10000,
        position_cost=50_000_000,
        realized_pnl=10_000_000,
        fees_paid=1_000_000,
    )


# --------------------------------------------------------------------------- command replies


def test_subscribed_carries_the_channel_and_its_sid() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("subscribed"))

    assert event == Subscribed(id=1, channel="orderbook_delta", sid=1)


def test_ok_after_update_subscription_carries_the_full_ticker_list() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("ok.update_subscription"))

    assert event == Ok(
        id=123,
        sid=456,
        seq=222,
        market_tickers=("MARKET-1", "MARKET-2", "MARKET-3"),
        subscriptions=None,
    )


def test_ok_answering_list_subscriptions_carries_channel_sid_pairs() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("ok.list_subscriptions"))

    assert event == Ok(
        id=3,
        sid=None,
        seq=None,
        market_tickers=None,
        subscriptions=(("orderbook_delta", 1), ("ticker", 2), ("fill", 3)),
    )


def test_ok_without_a_ticker_list_carries_none() -> None:
    event = decode({"id": 9, "sid": 4, "seq": 5, "type": "ok", "msg": {}})

    assert event == Ok(id=9, sid=4, seq=5, market_tickers=None, subscriptions=None)


def test_unsubscribed_carries_sid_and_seq() -> None:
    event = WireDecoder(use_yes_price=False).decode(sample("unsubscribed"))

    assert event == Unsubscribed(id=102, sid=2, seq=7)


def test_an_error_reply_carries_code_message_and_optional_market() -> None:
    decoder = WireDecoder(use_yes_price=False)

    plain = decoder.decode(sample("error.already_subscribed"))
    market = decoder.decode(sample("error.market_not_found"))

    assert plain == ErrorMsg(id=123, code=6, msg="Already subscribed", market_ticker=None)
    assert market == ErrorMsg(
        id=127, code=16, msg="Market not found", market_ticker="INVALID-MARKET"
    )
    assert not market.terminal


def test_a_channel_error_is_terminal() -> None:
    event = decode({"type": "error", "msg": {"code": 25, "msg": "Subscription buffer overflow"}})

    assert isinstance(event, ErrorMsg)
    assert event.id is None
    assert event.terminal


# --------------------------------------------------------------------------- unknown, malformed


def test_an_unknown_type_is_counted_and_skipped() -> None:
    decoder = WireDecoder(use_yes_price=False)

    first = decoder.decode(sample("event_lifecycle"))
    second = decoder.decode(b'{"type":"order_group_updates","sid":21,"seq":7,"msg":{}}')
    third = decoder.decode(sample("event_lifecycle"))

    assert (first, second, third) == (None, None, None)
    assert decoder.unknown_counts == {"event_lifecycle": 2, "order_group_updates": 1}


def test_a_frame_that_is_not_json_raises_a_wire_error() -> None:
    error = wire_error(b'{"type":"orderbook_delta","sid":')

    assert error.msg_type is None
    assert "not valid JSON" in error.reason


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (b"[1, 2]", "JSON object"),
        (b'"orderbook_delta"', "JSON object"),
        (b'{"sid": 1}', "'type'"),
        (b'{"type": ["x"]}', "'type'"),
        (b'{"type": 7}', "type"),
    ],
)
def test_a_frame_without_a_string_type_raises_a_wire_error(frame: bytes, words: str) -> None:
    error = wire_error(frame)

    assert words in error.reason


@pytest.mark.parametrize("field", ["price_dollars", "delta_fp", "side", "market_ticker"])
def test_a_delta_missing_a_required_field_names_it(field: str) -> None:
    error = wire_error(with_msg("orderbook_delta", **{field: None}))

    assert error.msg_type == "orderbook_delta"
    assert field in str(error)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0.9x", "not a decimal number"),
        ("0.12345", "more than 4 decimal places"),
        ("0.00001", "more than 4 decimal places"),
        ("1.5000", "outside"),
        ("0", "outside"),
        ("1.0000", "outside"),
        (0.96, "expected a decimal string"),
    ],
)
@pytest.mark.parametrize("use_yes_price", [False, True])
def test_a_delta_with_a_bad_price_names_the_price_field(
    value: object, words: str, use_yes_price: bool
) -> None:
    decoder = WireDecoder(use_yes_price)
    decoder.decode(sample("orderbook_delta"))  # warm the cache with a good price
    frame = orjson.dumps(with_msg("orderbook_delta.no", price_dollars=value))

    for _ in range(2):  # a refused price must not be cached
        with pytest.raises(WireError) as info:
            decoder.decode(frame)
        assert info.value.msg_type == "orderbook_delta"
        assert "price_dollars" in info.value.reason
        assert words in info.value.reason


def test_a_delta_with_a_bad_size_names_the_size_field() -> None:
    error = wire_error(with_msg("orderbook_delta", delta_fp="-54.001"))

    assert "delta_fp" in error.reason


def test_a_delta_on_an_unknown_side_names_the_side_field() -> None:
    error = wire_error(with_msg("orderbook_delta", side="maybe"))

    assert error.reason.startswith("side:")


def test_a_delta_with_a_non_integer_seq_is_refused() -> None:
    obj = sample_obj("orderbook_delta")
    obj["seq"] = "3"

    error = wire_error(obj)

    assert "seq" in error.reason


def test_a_frame_whose_msg_is_not_an_object_says_so() -> None:
    obj = sample_obj("orderbook_delta")
    obj["msg"] = "oops"

    error = wire_error(obj)

    assert error.reason.startswith("msg:")


@pytest.mark.parametrize(
    ("levels", "words"),
    [
        ([["0.9x", "1.00"]], "not a decimal number"),
        ([["0.12345", "1.00"]], "more than 4 decimal places"),
        ([["0.5000"]], "[price, count] pairs"),
        ([["0.5000", "1.00", "2.00"]], "[price, count] pairs"),
        ("0.5000", "[price, count] pairs"),
        ([["0.0000", "1.00"]], "outside"),
    ],
)
def test_a_snapshot_with_a_bad_level_names_the_side_field(levels: object, words: str) -> None:
    error = wire_error(with_msg("orderbook_snapshot", no_dollars_fp=levels))

    assert error.msg_type == "orderbook_snapshot"
    assert "no_dollars_fp" in error.reason
    assert words in error.reason


@pytest.mark.parametrize(
    ("name", "fields", "words"),
    [
        ("ticker", {"ts_ms": None, "ts": None}, "'ts_ms'"),
        ("ticker", {"yes_bid_dollars": "0.4x"}, "yes_bid_dollars"),
        ("trade", {"count_fp": "1.234"}, "count_fp"),
        ("fill", {"is_taker": "yes"}, "is_taker"),
        ("fill", {"fee_cost": "0.0000001"}, "fee_cost"),
        ("user_order", {"last_updated_ts_ms": None, "created_ts_ms": None}, "created_ts_ms"),
        ("market_position", {"realized_pnl_dollars": "ten"}, "realized_pnl_dollars"),
        ("market_lifecycle_v2.tapered", {"price_ranges": [{"start": "0"}]}, "'end'"),
        ("market_lifecycle_v2.determined", {"settlement_value": "0.x"}, "settlement_value"),
        ("error.already_subscribed", {"code": "6"}, "code"),
        ("subscribed", {"sid": None}, "'sid'"),
    ],
)
def test_malformed_messages_of_every_type_name_type_and_field(
    name: str, fields: dict[str, Any], words: str
) -> None:
    obj = with_msg(name, **{k: v for k, v in fields.items() if v is not None})
    for key in (k for k, v in fields.items() if v is None):
        obj["msg"].pop(key, None)

    error = wire_error(obj)

    assert error.msg_type == obj["type"]
    assert words in error.reason
    assert str(error).startswith(f"{obj['type']}: ")


# --------------------------------------------------------------------------- out of range


def test_a_refusal_names_its_kind_as_type_and_field() -> None:
    error = wire_error(with_msg("fill", count_fp="-1.00"))

    assert (error.msg_type, error.field, error.kind) == ("fill", "count_fp", "fill.count_fp")


@pytest.mark.parametrize("price", ["0", "0.0000", "1.0000", "1.5", "-0.5000"])
@pytest.mark.parametrize("name", ["fill", "trade", "user_order"])
def test_a_fill_trade_or_order_price_outside_the_open_dollar_is_refused(
    name: str, price: str
) -> None:
    error = wire_error(with_msg(name, yes_price_dollars=price))

    assert error.kind == f"{name}.yes_price_dollars"
    assert "outside (0, 1)" in error.reason


@pytest.mark.parametrize(
    ("name", "field", "count"),
    [
        ("fill", "count_fp", "-1.00"),
        ("fill", "count_fp", "0.00"),
        ("trade", "count_fp", "-136.00"),
        ("trade", "count_fp", "0"),
        ("user_order", "fill_count_fp", "-2.00"),
        ("user_order", "remaining_count_fp", "-0.01"),
        ("user_order", "initial_count_fp", "-10.00"),
        ("ticker", "volume_fp", "-1.00"),
        ("ticker", "yes_bid_size_fp", "-300.00"),
    ],
)
def test_a_negative_or_empty_count_where_only_a_size_makes_sense_is_refused(
    name: str, field: str, count: str
) -> None:
    error = wire_error(with_msg(name, **{field: count}))

    assert error.kind == f"{name}.{field}"


@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("fill", "count_fp", "1" + "0" * 20),
        ("orderbook_delta", "delta_fp", "-" + "9" * 18),
        ("market_position", "position_fp", "9" * 25),
        ("market_position", "realized_pnl_dollars", "9" * 25),
        ("fill", "fee_cost", "-0.017500"),
        ("fill", "ts_ms", -1),
        ("ticker", "ts_ms", 10**16),
        ("market_lifecycle_v2.close_date_updated", "close_ts", -1694718000),
        ("market_lifecycle_v2.determined", "settlement_value", "1.5000"),
        ("market_lifecycle_v2.determined", "settlement_value", "-0.0100"),
    ],
)
def test_absurd_sizes_amounts_times_and_values_are_refused(
    name: str, field: str, value: object
) -> None:
    error = wire_error(with_msg(name, **{field: value}))

    assert error.kind == f"{sample_obj(name)['type']}.{field}"
    assert "outside" in error.reason


def test_a_ticker_price_may_be_zero_or_one_dollar_for_an_empty_side_but_not_beyond() -> None:
    event = decode(with_msg("ticker", yes_bid_dollars="0.0000", yes_ask_dollars="1.0000"))
    error = wire_error(with_msg("ticker", yes_ask_dollars="1.0100"))

    assert isinstance(event, Ticker)
    assert (event.yes_bid, event.yes_ask) == (0, ONE_DOLLAR)
    assert error.kind == "ticker.yes_ask_dollars"


@pytest.mark.parametrize("ticker", [7, ["FED-23DEC-T3.00"], {"a": 1}, None, True])
def test_a_delta_whose_ticker_is_not_a_string_is_refused_on_both_paths(ticker: object) -> None:
    obj = sample_obj("orderbook_delta")
    obj["msg"]["market_ticker"] = ticker
    frame = orjson.dumps(obj)
    handed: list[object] = []

    with pytest.raises(WireError) as hot:
        WireDecoder(False).decode_into(frame, lambda *args: handed.append(args))
    cold = wire_error(obj)

    assert handed == []
    assert hot.value.kind == cold.kind == "orderbook_delta.market_ticker"


@pytest.mark.parametrize("name", ["fill", "trade", "ticker", "market_position"])
def test_a_market_ticker_that_is_not_a_string_is_refused(name: str) -> None:
    error = wire_error(with_msg(name, market_ticker=["HIGHNY-22DEC23-B53.5"]))

    assert error.kind == f"{name}.market_ticker"


def test_a_scalar_result_needs_a_settlement_value() -> None:
    determined = "market_lifecycle_v2.determined"
    error = wire_error(with_msg(determined, result="scalar", settlement_value=None))
    event = decode(with_msg(determined, result="scalar", settlement_value="0.3700"))

    assert error.kind == "market_lifecycle_v2.settlement_value"
    assert "scalar" in error.reason
    assert isinstance(event, MarketLifecycle)
    assert (event.result, event.settlement_value) == ("scalar", 3700)


@pytest.mark.parametrize("use_yes_price", [False, True])
def test_a_crossed_snapshot_is_refused_under_both_conventions(use_yes_price: bool) -> None:
    # A NO bid of 50¢ is a YES ask of 50¢ (its YES price is 50¢ too): a YES bid at 50¢ or
    # more would have matched it
    def snapshot(yes_bid: str) -> dict[str, Any]:
        no = [["0.5000", "10.00"]]
        return with_msg("orderbook_snapshot", yes_dollars_fp=[[yes_bid, "1.00"]], no_dollars_fp=no)

    error = wire_error(snapshot("0.5000"), use_yes_price)
    inside = decode(snapshot("0.4999"), use_yes_price)

    assert error.kind == "orderbook_snapshot.crossed"
    assert isinstance(inside, BookSnapshot)
    assert (inside.yes, inside.no) == ([(4999, 100)], [(5000, 1000)])


@pytest.mark.parametrize(
    ("levels", "words"),
    [
        ([["0.2200", "-1.00"]], "outside"),
        ([["0.2200", "1.00"], ["0.2200", "2.00"]], "twice"),
        ({"0.2200": "1.00"}, "pairs"),
        ([{"0.2200": "1.00"}], "pairs"),
        ([["0.2200", "1.00", "x"]], "pairs"),
        ("0.2200", "pairs"),
    ],
)
def test_a_snapshot_level_with_a_negative_size_a_repeated_price_or_no_pair_shape_is_refused(
    levels: object, words: str
) -> None:
    error = wire_error(with_msg("orderbook_snapshot", yes_dollars_fp=levels))

    assert error.kind == "orderbook_snapshot.yes_dollars_fp"
    assert words in error.reason


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b'{"type":"fill","msg":', "frame.json"),
        (b"[1]", "frame.type"),
        (b'{"type":"fill","msg":[1]}', "fill.msg"),
        (b'{"type":"fill","msg":{}}', "fill.trade_id"),
    ],
)
def test_envelope_refusals_have_kinds_too(frame: bytes, kind: str) -> None:
    assert wire_error(frame).kind == kind


def test_a_ticker_without_ts_ms_falls_back_to_seconds() -> None:
    event = decode(with_msg("ticker", ts_ms=None))

    assert isinstance(event, Ticker)
    assert event.ts_ms == 1669149841000


# --------------------------------------------------------------------------- shared parsers


def test_parse_levels_reads_rest_orderbook_fp_levels() -> None:
    levels = parse_levels([["0.4200", "13.00"], ["0.4250", "0.50"]], "orderbook_fp.yes_dollars")

    assert levels == [(4200, 1300), (4250, 50)]


def test_parse_levels_errors_name_the_field_and_leave_the_type_to_the_caller() -> None:
    with pytest.raises(WireError) as info:
        parse_levels([["0.42", "1.001"]], "orderbook_fp.no_dollars")

    assert info.value.msg_type is None
    assert "orderbook_fp.no_dollars" in info.value.reason


def test_parse_price_ranges_reads_rest_market_bands() -> None:
    bands = parse_price_ranges(
        [
            {"start": "0.0000", "end": "0.0100", "step": "0.0001"},
            {"start": "0.0100", "end": "0.9900", "step": "0.0010"},
            {"start": "0.9900", "end": "1.0000", "step": "0.0001"},
        ],
    )

    assert bands == ((0, 100, 1), (100, 9900, 10), (9900, 10000, 1))


@pytest.mark.parametrize(
    ("band", "words"),
    [
        ({"start": "0.0000", "end": "1.0000"}, "price_ranges[1]: missing field 'step'"),
        ({"start": "0.0000", "end": "1.0000", "step": "0.00001"}, "price_ranges[1].step"),
        ("0.01", "price_ranges[1]"),
    ],
)
def test_parse_price_ranges_errors_name_the_band(band: object, words: str) -> None:
    good = {"start": "0.0000", "end": "1.0000", "step": "0.0100"}

    with pytest.raises(WireError) as info:
        parse_price_ranges([good, band])  # type: ignore[list-item]

    assert words in info.value.reason
