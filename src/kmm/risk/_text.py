"""Formatting of amounts for the risk module's reasons and log lines."""

from __future__ import annotations

from kmm.types import Money, Qty, format_count, format_money

__all__ = ["contracts", "seconds", "usd"]


def usd(amount: Money) -> str:
    """Money units as dollars with 2 to 6 decimals: ``-$12.50``, ``$0.0045``."""
    whole, _, frac = format_money(abs(amount)).partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    sign = "-" if amount < 0 else ""
    return f"{sign}${whole}.{frac}"


def contracts(qty: Qty) -> str:
    """0.01-contract units as a two-decimal count: ``12.00``, ``-3.50``."""
    return format_count(qty)


def seconds(ns: int) -> str:
    """Nanoseconds as seconds with one decimal: ``31.2 s``."""
    return f"{ns / 1e9:.1f} s"
