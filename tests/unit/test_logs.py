"""Operations logging: ops.log lines, the market/order prefix, the queue and the listener."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path

import pytest

from kmm.record import setup_logging

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[tuple[QueueListener, io.StringIO]]:
    console = io.StringIO()
    listener = setup_logging(tmp_path, "INFO", console)
    yield listener, console
    listener.stop()


def ops_lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "ops.log").read_text(encoding="utf-8").splitlines()


def test_a_line_has_utc_time_level_logger_ids_prefix_and_message(
    tmp_path: Path, ops: tuple[QueueListener, io.StringIO]
) -> None:
    # Arrange
    listener, _ = ops
    log = logging.getLogger("kmm.exec")

    # Act
    log.warning(
        "rejected: %s",
        "insufficient_balance",
        extra={"ticker": "KXA-26NOV23", "client_order_id": "kmm-1-42"},
    )
    listener.stop()

    # Assert
    (line,) = ops_lines(tmp_path)
    assert LINE.match(line)
    assert line.split(" ", 1)[1] == (
        "WARNING kmm.exec [KXA-26NOV23 kmm-1-42] rejected: insufficient_balance"
    )


def test_the_prefix_holds_only_the_ids_present_and_is_absent_without_them(
    tmp_path: Path, ops: tuple[QueueListener, io.StringIO]
) -> None:
    # Arrange
    listener, _ = ops
    log = logging.getLogger("kmm.ws")

    # Act
    log.info("gap in seq", extra={"ticker": "KXB-26NOV23"})
    log.info("connected to %s", "ws://127.0.0.1:8080")
    listener.stop()

    # Assert
    first, second = (line.split(" ", 1)[1] for line in ops_lines(tmp_path))
    assert first == "INFO kmm.ws [KXB-26NOV23] gap in seq"
    assert second == "INFO kmm.ws connected to ws://127.0.0.1:8080"


def test_the_console_gets_the_same_lines_as_the_file(
    tmp_path: Path, ops: tuple[QueueListener, io.StringIO]
) -> None:
    # Arrange
    listener, console = ops

    # Act
    logging.getLogger("kmm.engine").error("halted: %s", "daily loss")
    listener.stop()

    # Assert
    assert console.getvalue().splitlines() == ops_lines(tmp_path)


def test_records_below_the_level_are_dropped(tmp_path: Path) -> None:
    # Arrange
    listener = setup_logging(tmp_path, "warning", None)
    log = logging.getLogger("kmm.engine")

    # Act
    log.info("not this")
    log.warning("this")
    listener.stop()

    # Assert
    assert [line.split(" ", 1)[1] for line in ops_lines(tmp_path)] == ["WARNING kmm.engine this"]


def test_an_exception_is_written_with_its_traceback(
    tmp_path: Path, ops: tuple[QueueListener, io.StringIO]
) -> None:
    # Arrange
    listener, _ = ops

    # Act
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("kmm.exec").exception("request failed")
    listener.stop()

    # Assert
    text = (tmp_path / "ops.log").read_text(encoding="utf-8")
    assert "ERROR kmm.exec request failed\nTraceback (most recent call last):" in text
    assert text.rstrip().endswith("RuntimeError: boom")


def test_arguments_are_frozen_when_logged_not_when_written(
    tmp_path: Path, ops: tuple[QueueListener, io.StringIO]
) -> None:
    # Arrange
    listener, _ = ops
    orders = ["kmm-1-1"]

    # Act
    logging.getLogger("kmm.exec").info("resting %s", orders)
    orders.append("kmm-1-2")
    listener.stop()

    # Assert
    assert ops_lines(tmp_path)[0].endswith("resting ['kmm-1-1']")


def test_lines_are_written_by_the_listener_thread_not_the_caller(
    ops: tuple[QueueListener, io.StringIO],
) -> None:
    # Arrange
    listener, _ = ops
    writers: list[str] = []

    class Spy(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            writers.append(threading.current_thread().name)

    listener.handlers = (*listener.handlers, Spy())

    # Act
    logging.getLogger("kmm.engine").info("hello")
    listener.stop()

    # Assert
    assert writers and writers[0] != threading.current_thread().name


def test_stop_detaches_the_queue_handler_and_is_idempotent(
    ops: tuple[QueueListener, io.StringIO],
) -> None:
    # Arrange
    listener, _ = ops

    # Act
    listener.stop()
    listener.stop()

    # Assert
    assert not any(isinstance(h, QueueHandler) for h in logging.getLogger().handlers)


def test_a_second_setup_replaces_the_first_queue_handler(tmp_path: Path) -> None:
    # Arrange
    first = setup_logging(None, "INFO", io.StringIO())

    # Act
    second = setup_logging(tmp_path, "INFO", None)
    queue_handlers = [h for h in logging.getLogger().handlers if isinstance(h, QueueHandler)]
    first.stop()
    second.stop()

    # Assert
    assert len(queue_handlers) == 1


def test_stop_restores_the_root_level_it_found(tmp_path: Path) -> None:
    # Arrange
    root = logging.getLogger()
    before = root.level
    listener = setup_logging(tmp_path, "DEBUG", None)

    # Act
    during = root.level
    listener.stop()

    # Assert
    assert during == logging.DEBUG
    assert root.level == before


def test_json_lines_carry_time_level_logger_ids_message_and_traceback(tmp_path: Path) -> None:
    listener = setup_logging(tmp_path, "INFO", None, "json")
    log = logging.getLogger("kmm.exec")

    log.warning("rejected: %s", "post_only", extra={"ticker": "KXA", "client_order_id": "k-1"})
    log.info("plain")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    listener.stop()

    first, plain, failed = (
        json.loads(line) for line in ops_lines(tmp_path) if line.startswith("{")
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first == first | {
        "level": "WARNING", "logger": "kmm.exec", "message": "rejected: post_only",
        "ticker": "KXA", "client_order_id": "k-1",
    }  # fmt: skip
    assert set(plain) == {"ts", "level", "logger", "message"}
    assert failed["message"] == "failed" and "ValueError: boom" in failed["exc"]
