"""Alerts to a webhook: a halt, a loss past a threshold, sustained errors, a stale feed, no fills.

Theory of operation
-------------------
Once a second the engine hands :class:`AlertMonitor` a snapshot of what it watches
(:class:`AlertInputs`: the halt reason, the run's P&L, the count of rejected and unknown
orders so far, when the feed last spoke, fills so far, markets quoted) with the time. The monitor
is pure: it keeps only what the rules need (when each alert last went out, a window of error
counts, when the fill count last moved) and returns the alerts due now. Each kind goes out at
most once every ``ops.alert_every_s``, so a condition that holds for an hour is one message, not
3,600; a halt is announced once per halt.

:class:`WebhookSender` posts each alert as JSON that Slack (``text``), Discord (``content``) and
generic receivers (``kmm``: kind, severity, message, time, run) accept. A webhook that fails is
logged and never stops trading.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp

from kmm.config import OpsConfig
from kmm.types import MONEY_SCALE, Money, format_money

__all__ = ["Alert", "AlertInputs", "AlertMonitor", "AlertParams", "WebhookSender", "payload"]

log = logging.getLogger(__name__)

_NS_PER_S: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class AlertParams:
    """When to alert (from the ``ops`` section; see :meth:`from_config`)."""

    loss: Money | None = None
    """Alert once the run's P&L is below minus this (None: never)."""
    errors: int = 10
    errors_window_ns: int = 60 * _NS_PER_S
    stale_feed_ns: int = 30 * _NS_PER_S
    """0: never."""
    no_fills_ns: int = 3600 * _NS_PER_S
    """0: never."""
    every_ns: int = 300 * _NS_PER_S

    @classmethod
    def from_config(cls, ops: OpsConfig) -> AlertParams:
        """The parameters of ``ops.alert_*``."""
        loss = ops.alert_loss_dollars
        return cls(
            loss=None if loss is None else int(loss * MONEY_SCALE),
            errors=ops.alert_errors,
            errors_window_ns=round(ops.alert_errors_window_s * _NS_PER_S),
            stale_feed_ns=round(ops.alert_stale_feed_s * _NS_PER_S),
            no_fills_ns=round(ops.alert_no_fills_s * _NS_PER_S),
            every_ns=round(ops.alert_every_s * _NS_PER_S),
        )


@dataclass(frozen=True, slots=True)
class AlertInputs:
    """What the monitor watches, read from the engine once a second."""

    halted: str | None
    pnl: Money
    errors: int
    """Orders rejected or gone unknown since the start."""
    feed_last_ns: int
    """When the venue's feed last sent anything (0: never yet)."""
    fills: int
    quoting: int
    """Markets quoted now."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: its kind (``halt``, ``loss``, ``errors``, ``stale_feed``, ``no_fills``), how
    bad it is, and the line that says it."""

    kind: str
    severity: str
    message: str
    ts_ns: int


@dataclass(slots=True)
class AlertMonitor:
    """Decides which alerts are due (pure; see the module docstring).

    Args:
        params: When to alert.
        start_ns: When the run started (no fills are counted from here).
    """

    params: AlertParams
    start_ns: int
    _sent: dict[str, int] = field(default_factory=dict)
    _halted: str | None = None
    _errors: deque[tuple[int, int]] = field(default_factory=deque)
    _fills: int = 0
    _fill_ns: int = 0

    def __post_init__(self) -> None:
        self._fill_ns = self.start_ns

    def check(self, inputs: AlertInputs, now_ns: int) -> list[Alert]:
        """The alerts due now."""
        found = [
            self._halt(inputs, now_ns),
            self._loss(inputs, now_ns),
            self._error_rate(inputs, now_ns),
            self._stale(inputs, now_ns),
            self._no_fills(inputs, now_ns),
        ]
        return [a for a in found if a is not None and self._due(a, now_ns)]

    def _due(self, alert: Alert, now_ns: int) -> bool:
        last = self._sent.get(alert.kind)
        if alert.kind != "halt" and last is not None and now_ns - last < self.params.every_ns:
            return False
        self._sent[alert.kind] = now_ns
        return True

    def _halt(self, inputs: AlertInputs, now_ns: int) -> Alert | None:
        new = inputs.halted is not None and inputs.halted != self._halted
        self._halted = inputs.halted
        if not new:
            return None
        return Alert("halt", "critical", f"kmm halted: {inputs.halted}", now_ns)

    def _loss(self, inputs: AlertInputs, now_ns: int) -> Alert | None:
        loss = self.params.loss
        if loss is None or inputs.pnl >= -loss:
            return None
        return Alert(
            "loss",
            "critical",
            f"kmm P&L ${format_money(inputs.pnl)} is below the alert threshold "
            f"-${format_money(loss)}",
            now_ns,
        )

    def _error_rate(self, inputs: AlertInputs, now_ns: int) -> Alert | None:
        window = self._errors
        window.append((now_ns, inputs.errors))
        while window and now_ns - window[0][0] > self.params.errors_window_ns:
            window.popleft()
        recent = inputs.errors - window[0][1]
        if recent < self.params.errors:
            return None
        seconds = self.params.errors_window_ns / _NS_PER_S
        return Alert(
            "errors",
            "warning",
            f"kmm: {recent} orders rejected or unknown in the last {seconds:.0f} s",
            now_ns,
        )

    def _stale(self, inputs: AlertInputs, now_ns: int) -> Alert | None:
        limit = self.params.stale_feed_ns
        if not limit or not inputs.feed_last_ns or now_ns - inputs.feed_last_ns < limit:
            return None
        age = (now_ns - inputs.feed_last_ns) / _NS_PER_S
        line = f"kmm: the venue's feed is silent for {age:.0f} s"
        return Alert("stale_feed", "warning", line, now_ns)

    def _no_fills(self, inputs: AlertInputs, now_ns: int) -> Alert | None:
        if inputs.fills != self._fills or not inputs.quoting or inputs.halted is not None:
            self._fills, self._fill_ns = inputs.fills, now_ns  # moved, or nothing to fill
            return None
        limit = self.params.no_fills_ns
        if not limit or now_ns - self._fill_ns < limit:
            return None
        idle = (now_ns - self._fill_ns) / _NS_PER_S
        return Alert(
            "no_fills",
            "warning",
            f"kmm: no fill for {idle:.0f} s while quoting {inputs.quoting} markets",
            now_ns,
        )


def payload(alert: Alert, run: str) -> dict[str, Any]:
    """The JSON posted for an alert: ``text`` for Slack, ``content`` for Discord, ``kmm`` for
    everything else."""
    when = datetime.fromtimestamp(alert.ts_ns / _NS_PER_S, UTC).isoformat(timespec="seconds")
    return {
        "text": alert.message,
        "content": alert.message,
        "kmm": {
            "kind": alert.kind,
            "severity": alert.severity,
            "message": alert.message,
            "time": when,
            "run": run,
        },
    }


class WebhookSender:
    """Posts alerts to ``url``; a failure is logged, never raised.

    Args:
        url: The webhook.
        run: The run's id, named in every alert.
        timeout_s: How long one post may take.
    """

    def __init__(self, url: str, run: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.run = run
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.sent = 0
        self.failed = 0

    async def send(self, alert: Alert) -> None:
        """Posts one alert. The URL is never logged: a Slack or Discord webhook's path is its
        secret."""
        try:
            async with (
                aiohttp.ClientSession(timeout=self.timeout) as session,
                session.post(self.url, json=payload(alert, self.run)) as answer,
            ):
                if answer.status >= 300:
                    self.failed += 1
                    log.warning("alert %s: the webhook answered %d", alert.kind, answer.status)
                    return
            self.sent += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failed += 1
            log.warning("alert %s: the webhook failed: %s", alert.kind, type(exc).__name__)
