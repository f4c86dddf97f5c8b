"""The alert rules: what is due when, and how often the same alert may go out."""

from __future__ import annotations

from dataclasses import replace

from kmm.config import OpsConfig
from kmm.ops.alerts import Alert, AlertInputs, AlertMonitor, AlertParams, payload

S = 1_000_000_000
T0 = 1_800_000_000 * S
CALM = AlertInputs(halted=None, pnl=0, errors=0, feed_last_ns=T0, fills=0, quoting=3)


def _monitor(**params: object) -> AlertMonitor:
    base = AlertParams(loss=5_000_000, errors=3, errors_window_ns=60 * S, stale_feed_ns=30 * S,
                       no_fills_ns=600 * S, every_ns=300 * S)  # fmt: skip
    return AlertMonitor(replace(base, **params), T0)  # type: ignore[arg-type]


def _kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def test_a_calm_run_alerts_nothing() -> None:
    monitor = _monitor()

    assert monitor.check(CALM, T0) == []
    assert monitor.check(replace(CALM, feed_last_ns=T0 + S, fills=1), T0 + 2 * S) == []


def test_a_halt_is_announced_once_per_halt() -> None:
    monitor = _monitor()
    halted = replace(CALM, halted="daily loss")

    first = monitor.check(halted, T0)
    assert _kinds(first) == ["halt"] and first[0].message == "kmm halted: daily loss"
    assert monitor.check(halted, T0 + S) == []
    monitor.check(CALM, T0 + 2 * S)  # resumed
    assert _kinds(monitor.check(halted, T0 + 3 * S)) == ["halt"]


def test_a_loss_past_the_threshold_alerts_at_most_every_interval() -> None:
    monitor = _monitor()
    losing = replace(CALM, pnl=-5_000_001)

    assert monitor.check(replace(CALM, pnl=-5_000_000), T0) == []
    (alert,) = monitor.check(losing, T0 + S)
    assert alert.kind == "loss" and "$-5.000001" in alert.message
    later = T0 + 299 * S
    assert monitor.check(replace(losing, feed_last_ns=later, fills=1), later) == []
    later = T0 + 302 * S
    assert _kinds(monitor.check(replace(losing, feed_last_ns=later, fills=2), later)) == ["loss"]


def test_errors_alert_when_enough_fall_within_the_window() -> None:
    monitor = _monitor()
    monitor.check(replace(CALM, errors=10), T0)

    assert monitor.check(replace(CALM, errors=12, feed_last_ns=T0 + 59 * S), T0 + 59 * S) == []
    late = monitor.check(replace(CALM, errors=13, feed_last_ns=T0 + 60 * S), T0 + 60 * S)
    assert _kinds(late) == ["errors"] and "3 orders" in late[0].message
    slow = _monitor()
    for i in range(10):  # one error a minute never makes three within a minute
        now = T0 + i * 61 * S
        assert slow.check(replace(CALM, errors=i, feed_last_ns=now, fills=i), now) == []


def test_a_silent_feed_and_a_run_without_fills_alert() -> None:
    monitor = _monitor()

    assert _kinds(monitor.check(CALM, T0 + 30 * S)) == ["stale_feed"]
    quiet = _monitor()
    assert quiet.check(replace(CALM, feed_last_ns=T0 + 599 * S), T0 + 599 * S) == []
    alerts = quiet.check(replace(CALM, feed_last_ns=T0 + 600 * S), T0 + 600 * S)
    assert _kinds(alerts) == ["no_fills"] and "quoting 3 markets" in alerts[0].message


def test_no_fills_is_not_alerted_while_nothing_is_quoted() -> None:
    monitor = _monitor()
    idle = replace(CALM, quoting=0, feed_last_ns=T0 + 700 * S)

    assert monitor.check(idle, T0 + 700 * S) == []


def test_the_ops_section_sets_the_rules_and_zero_turns_one_off() -> None:
    params = AlertParams.from_config(OpsConfig(alert_loss_dollars="2.5", alert_stale_feed_s=0))

    assert params.loss == 2_500_000 and params.stale_feed_ns == 0
    monitor = AlertMonitor(params, T0)
    assert monitor.check(replace(CALM, feed_last_ns=T0), T0 + 3599 * S) == []  # no stale feed


def test_the_payload_speaks_slack_discord_and_plain_json() -> None:
    body = payload(Alert("halt", "critical", "kmm halted: x", T0), "20261205T000000Z")

    assert body["text"] == body["content"] == "kmm halted: x"
    assert body["kmm"] == {
        "kind": "halt",
        "severity": "critical",
        "message": "kmm halted: x",
        "time": "2027-01-15T08:00:00+00:00",
        "run": "20261205T000000Z",
    }
