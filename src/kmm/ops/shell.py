"""The operator's side of a running engine: metrics, the control API, alerts and reloads.

:class:`EngineOps` belongs to one :class:`~kmm.engine.LiveEngine`. It starts the two local
servers once the engine trades (``ops.metrics_port``, ``ops.control_port``) and writes their
addresses and the API's token into the run directory; once a second it samples the P&L history
the dashboard charts and checks the alert rules; and it applies the operator's writes (a
market's override, a reload of ``markets.overrides``) through the trading core, then lets the
engine act on what the core decided. Nothing here decides anything about trading.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kmm.config import KmmConfig, load_config
from kmm.errors import ConfigError
from kmm.ops.alerts import AlertInputs, AlertMonitor, AlertParams, WebhookSender
from kmm.ops.control import URL_FILE, ControlServer, write_token
from kmm.ops.metrics import MetricsServer, engine_metrics

if TYPE_CHECKING:
    from kmm.engine import LiveEngine

__all__ = ["METRICS_URL_FILE", "EngineOps"]

METRICS_URL_FILE: Final = "metrics.url"
_ERRORS: Final = frozenset({"rejected", "unknown"})
"""The order events that count toward ``ops.alert_errors``."""

log = logging.getLogger("kmm.engine")


async def _listen(field: str, port: int, start: Awaitable[str]) -> str:
    """Starts a server; a port that cannot be listened on is a config error."""
    try:
        return await start
    except OSError as e:
        raise ConfigError([f"{field}: cannot listen on {port}: {e.strerror}"]) from e


class EngineOps:
    """Metrics, the control API, alerts and reloads of one engine.

    Args:
        engine: The engine.
        config_path: The config file a reload reads again (None: defaults and environment
            overrides only).
    """

    def __init__(self, engine: LiveEngine, config_path: Path | None) -> None:
        self.engine = engine
        self.config_path = config_path
        self._loaded: KmmConfig = engine.config
        self._metrics: MetricsServer | None = None
        self._control: ControlServer | None = None
        config = engine.config
        self._alerts = AlertMonitor(AlertParams.from_config(config.ops), engine.core.started_ns)
        run = engine.recorder.run_dir.name if engine.recorder is not None else ""
        webhook = config.ops.webhook_url
        self._webhook = WebhookSender(webhook, run) if webhook else None

    async def start(self) -> None:
        """Serves ``/metrics`` and the control API, and writes their URLs (and the API's
        token) to the run directory."""
        engine = self.engine
        ops = engine.config.ops
        run_dir = engine.recorder.run_dir if engine.recorder is not None else None
        if ops.metrics_port is not None:
            self._metrics = MetricsServer(engine_metrics(engine), ops.metrics_port)
            url = await _listen("ops.metrics_port", ops.metrics_port, self._metrics.start())
            engine.report.metrics_url = url
            if run_dir is not None:
                (run_dir / METRICS_URL_FILE).write_text(url + "\n", encoding="utf-8")
        if ops.control_port is not None and run_dir is not None:
            self._control = ControlServer(engine, ops.control_port, write_token(run_dir))
            url = await _listen("ops.control_port", ops.control_port, self._control.start())
            engine.report.control_url = url
            (run_dir / URL_FILE).write_text(url + "\n", encoding="utf-8")

    async def stop(self) -> None:
        """Stops both servers."""
        if self._metrics is not None:
            await self._metrics.stop()
        if self._control is not None:
            await self._control.stop()

    def on_tick(self, now_ns: int) -> None:
        """Once a second: a point of the P&L history, and the alerts due."""
        if self._control is not None:
            self._control.sample(now_ns)
        self._check_alerts(now_ns)

    def _check_alerts(self, now_ns: int) -> None:
        """Logs the alerts due now and posts them to ``ops.webhook_url`` in the background."""
        engine = self.engine
        core = engine.core
        events = engine.report.order_events
        inputs = AlertInputs(
            halted=core.halted,
            pnl=core.portfolio.total_pnl(core.pnl_marks()),
            errors=sum(n for (what, _), n in events.items() if what in _ERRORS),
            feed_last_ns=core.feed_last_ns,
            fills=core.report.fills,
            quoting=len(core.quoting()),
        )
        for alert in self._alerts.check(inputs, now_ns):
            log.warning("alert %s: %s", alert.kind, alert.message)
            if self._webhook is not None:
                engine.spawn_background(self._webhook.send(alert))

    def status(self) -> dict[str, Any]:
        """What the shell adds to the control API's status: the process, addresses, the run
        directory, the Write tokens and 429s."""
        engine = self.engine
        bucket = engine.write_bucket
        planner = engine.core.planner
        return {
            "pid": os.getpid(),
            "run_dir": str(engine.recorder.run_dir) if engine.recorder is not None else None,
            "metrics_url": engine.report.metrics_url or None,
            "control_url": engine.report.control_url or None,
            "write_tokens": bucket.available(engine.clock.now_ns()) if bucket else None,
            "rate_limited": planner.counters.rate_limited if planner is not None else 0,
        }

    def update_override(self, ticker: str, changes: Mapping[str, Any]) -> list[str]:
        """Changes some fields of one market's override (the control API).

        Raises:
            ConfigError: naming the field that is unknown or out of range; nothing changed.
        """
        engine = self.engine
        lines = engine.core.update_override(ticker, changes, engine.clock.now_ns())
        engine.act()
        return lines

    def reload(self) -> list[str]:
        """Reloads ``markets.overrides`` from the config file (SIGHUP, the control API):
        validated first, applied without a restart, logged as a diff. Other changed sections
        are named and left alone (they need a restart).

        Returns:
            The change, one line per market.

        Raises:
            ConfigError: the file is refused (each problem named); nothing changed.
        """
        engine = self.engine
        try:
            fresh = load_config(self.config_path, os.environ)
            lines = engine.core.set_overrides(fresh.markets.overrides, engine.clock.now_ns())
        except ConfigError as exc:
            for problem in exc.problems:
                engine.core.say(f"reload refused, nothing changed: {problem}")
            engine.act()
            raise
        restart = [
            name
            for name in type(fresh).model_fields
            if name != "markets" and getattr(fresh, name) != getattr(self._loaded, name)
        ]
        if restart:
            engine.core.say(f"reload: {', '.join(restart)} changed in the file: needs a restart")
        engine.core.say(
            f"reload: {len(lines)} override(s) changed" if lines else "reload: no change"
        )
        engine.act()
        self._loaded = fresh
        return lines

    def on_hangup(self) -> None:
        """SIGHUP: :meth:`reload`, whose refusal is logged and changes nothing."""
        with contextlib.suppress(ConfigError):
            self.reload()
