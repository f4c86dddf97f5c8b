"""The record stage: the run's CSV tape, order and fill logs, ledger, raw capture and ops log.

Everything is written by background threads; the trading path only enqueues. See
:mod:`kmm.record.recorder` for the files and :mod:`kmm.record.logs` for the ops log.
"""

from __future__ import annotations

from kmm.record._markets import MARKETS_FILE, MarketMeta, load_markets_json, write_markets_json
from kmm.record.logs import setup_logging
from kmm.record.recorder import (
    FILL_COLUMNS,
    FILL_SOURCES,
    ORDER_COLUMNS,
    TAPE_COLUMNS,
    CapturedFrame,
    LedgerLock,
    Recorder,
    RecordError,
    account_id,
    iter_capture,
    last_fill_ns,
    new_run_dir,
    read_day,
)

__all__ = [
    "FILL_COLUMNS",
    "FILL_SOURCES",
    "MARKETS_FILE",
    "ORDER_COLUMNS",
    "TAPE_COLUMNS",
    "CapturedFrame",
    "LedgerLock",
    "MarketMeta",
    "RecordError",
    "Recorder",
    "account_id",
    "iter_capture",
    "last_fill_ns",
    "load_markets_json",
    "new_run_dir",
    "read_day",
    "setup_logging",
    "write_markets_json",
]
