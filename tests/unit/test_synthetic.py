from __future__ import annotations

import orjson

from kmm.sim.synthetic import SyntheticFeed, synthetic_frames
from kmm.types import ONE_DOLLAR, parse_count, parse_price


def _replay(frames: list[bytes]) -> dict[str, tuple[dict[int, int], dict[int, int]]]:
    books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    for frame in frames:
        message = orjson.loads(frame)
        msg = message["msg"]
        if message["type"] == "orderbook_snapshot":
            yes = {parse_price(p): parse_count(q) for p, q in msg.get("yes_dollars_fp", [])}
            no = {parse_price(p): parse_count(q) for p, q in msg.get("no_dollars_fp", [])}
            books[msg["market_ticker"]] = (yes, no)
            continue
        yes, no = books[msg["market_ticker"]]
        levels = yes if msg["side"] == "yes" else no
        price = parse_price(msg["price_dollars"])
        size = levels.get(price, 0) + parse_count(msg["delta_fp"])
        assert size >= 0, "a level went negative"
        if size:
            levels[price] = size
        else:
            del levels[price]
        if yes and no:
            assert max(yes) + max(no) < ONE_DOLLAR, "the book crossed"
    return books


def test_the_same_seed_gives_the_same_bytes() -> None:
    assert synthetic_frames(3, 200, seed=1) == synthetic_frames(3, 200, seed=1)
    assert synthetic_frames(3, 200, seed=1) != synthetic_frames(3, 200, seed=2)


def test_sequence_numbers_are_contiguous_on_the_subscription() -> None:
    frames = synthetic_frames(8, 500)
    seqs = [orjson.loads(f)["seq"] for f in frames]
    assert seqs == list(range(1, len(frames) + 1))


def test_replaying_the_stream_keeps_books_valid_and_uncrossed() -> None:
    feed = SyntheticFeed(markets=8, seed=3)
    frames = feed.snapshots() + list(feed.deltas(5000))
    books = _replay(frames)
    for market in feed.markets:
        assert books[market.ticker] == (market.yes, market.no)
