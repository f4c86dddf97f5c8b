"""The naive hot path kmm is measured against, built the way most bots are written.

``json`` for every frame, ``float()`` for every dollar string, a dict book whose best price is
found with ``max()`` on every message, and an Avellaneda–Stoikov quote recomputed on every
message whether or not the top of book moved.
"""

from __future__ import annotations

import json
import math

__all__ = ["NaivePipeline"]


class NaivePipeline:
    """json + max() over the book + a quote on every message."""

    def __init__(self, gamma: float = 0.5, kappa: float = 50.0, sigma: float = 0.001) -> None:
        self.books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
        self.quotes: dict[str, tuple[float, float]] = {}
        self.gamma = gamma
        self.kappa = kappa
        self.sigma = sigma

    def on_frame(self, frame: bytes) -> None:
        """Handles one websocket frame."""
        message = json.loads(frame)
        msg = message["msg"]
        ticker = msg["market_ticker"]
        if message["type"] == "orderbook_snapshot":
            yes = {float(p): float(q) for p, q in msg.get("yes_dollars_fp", [])}
            no = {float(p): float(q) for p, q in msg.get("no_dollars_fp", [])}
            self.books[ticker] = (yes, no)
        else:
            yes, no = self.books[ticker]
            levels = yes if msg["side"] == "yes" else no
            price = float(msg["price_dollars"])
            size = levels.get(price, 0.0) + float(msg["delta_fp"])
            if size > 1e-9:
                levels[price] = size
            else:
                levels.pop(price, None)
        self._quote(ticker)

    def _quote(self, ticker: str) -> None:
        yes, no = self.books[ticker]
        if not yes or not no:
            return
        best_bid = max(yes)
        best_ask = 1.0 - max(no)
        mid = (best_bid + best_ask) / 2
        tau = 3600.0
        reservation = mid - 0.0 * self.gamma * self.sigma**2 * tau
        spread = self.gamma * self.sigma**2 * tau + (2 / self.gamma) * math.log(
            1 + self.gamma / self.kappa
        )
        bid = math.floor((reservation - spread / 2) * 100) / 100
        ask = math.ceil((reservation + spread / 2) * 100) / 100
        self.quotes[ticker] = (min(bid, best_ask - 0.01), max(ask, best_bid + 0.01))
