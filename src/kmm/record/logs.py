"""Operations logging: stdlib ``logging`` through a queue, handlers on a listener thread.

Theory of operation
-------------------
:func:`setup_logging` puts one :class:`~logging.handlers.QueueHandler` on the root logger and
starts a :class:`~logging.handlers.QueueListener` thread that owns every real handler: the
run's ``ops.log`` and, when given, the console. A logging call on the trading side builds the
record, merges its arguments into the message (so that a value changed later cannot alter
what was logged) and enqueues it; the line formatting (time, level, prefix, traceback) and the
file I/O happen on the listener thread.

Records carry structured fields through ``extra=``. ``ticker`` and ``client_order_id`` become a
``[ticker client_order_id]`` prefix, so that the lines of one market or one order can be
grepped::

    log.warning("rejected: %s", code, extra={"ticker": t, "client_order_id": coid})
    2026-11-23T12:00:00.123Z WARNING kmm.exec [KXA-26AUG20 kmm-1-42] rejected: insufficient_balance
"""

from __future__ import annotations

import logging
import time
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from queue import SimpleQueue
from typing import TextIO

import orjson

__all__ = ["JsonFormatter", "OpsFormatter", "setup_logging"]


def _prefix(record: logging.LogRecord) -> str:
    ticker = getattr(record, "ticker", None)
    client_order_id = getattr(record, "client_order_id", None)
    ids = [str(i) for i in (ticker, client_order_id) if i is not None]
    return f"[{' '.join(ids)}] " if ids else ""


class OpsFormatter(logging.Formatter):
    """``2026-11-23T12:00:00.123Z LEVEL logger [ticker client_order_id] message``, in UTC."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line, followed by its traceback or stack if it has one."""
        record.message = record.getMessage()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (
            f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {record.name} "
            f"{_prefix(record)}{record.message}"
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line (``--log-format json``): ``ts`` (ISO UTC, ms), ``level``,
    ``logger``, ``message``, and ``ticker``, ``client_order_id`` and ``exc`` (the traceback)
    when the record has them, for log shippers that parse lines."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, str] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("ticker", "client_order_id"):
            value = getattr(record, key, None)
            if value is not None:
                line[key] = str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line).decode()


_FORMATTERS: dict[str, type[logging.Formatter]] = {"text": OpsFormatter, "json": JsonFormatter}
"""``record.log_format``'s choices."""


class _Enqueue(QueueHandler):
    """A QueueHandler that leaves formatting to the listener thread.

    The stdlib's ``prepare`` formats the whole line and copies the record on the caller's
    thread; this one only merges the arguments into the message, which freezes their values.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        return record


class _OpsListener(QueueListener):
    """The listener, whose :meth:`stop` also undoes the rest of :func:`setup_logging`."""

    def __init__(
        self,
        queue: SimpleQueue[logging.LogRecord],
        enqueue: _Enqueue,
        root_level: int,
        *handlers: logging.Handler,
    ) -> None:
        super().__init__(queue, *handlers, respect_handler_level=True)
        self._enqueue = enqueue
        self._root_level = root_level
        self._stopped = False

    def stop(self) -> None:
        """Writes what is queued, stops the thread, closes the files, and removes the queue
        handler from the root logger and restores its level. Idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        root = logging.getLogger()
        root.removeHandler(self._enqueue)
        root.setLevel(self._root_level)
        super().stop()
        for handler in self.handlers:
            handler.close()


def setup_logging(
    run_dir: Path | None, level: str, console: TextIO | None, log_format: str = "text"
) -> QueueListener:
    """Routes every logger through a queue to ``run_dir/ops.log`` and ``console``.

    Installs a queue handler on the root logger (replacing one from an earlier call; other
    handlers there are left alone) and sets the root level.

    Args:
        run_dir: The run directory to write ``ops.log`` in, or None for no file.
        level: The lowest level recorded (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``).
        console: A stream to also write the lines to (e.g. ``sys.stderr``), or None.
        log_format: ``text`` (:class:`OpsFormatter`) or ``json`` (:class:`JsonFormatter`).

    Returns:
        The started listener; ``stop()`` it at exit to write out what is queued and close
        ``ops.log`` (stopping also detaches the queue handler and restores the root level).

    Raises:
        ValueError: if ``level`` is not a logging level name.
        KeyError: if ``log_format`` is neither ``text`` nor ``json``.
        OSError: if ``ops.log`` cannot be opened.
    """
    root = logging.getLogger()
    root_level = root.level
    root.setLevel(level.upper())
    handlers: list[logging.Handler] = []
    if run_dir is not None:
        handlers.append(logging.FileHandler(run_dir / "ops.log", encoding="utf-8"))
    if console is not None:
        handlers.append(logging.StreamHandler(console))
    formatter = _FORMATTERS[log_format]()
    for handler in handlers:
        handler.setFormatter(formatter)
    for old in [h for h in root.handlers if isinstance(h, _Enqueue)]:
        root.removeHandler(old)
    queue: SimpleQueue[logging.LogRecord] = SimpleQueue()
    enqueue = _Enqueue(queue)
    listener = _OpsListener(queue, enqueue, root_level, *handlers)
    listener.start()
    root.addHandler(enqueue)
    return listener
