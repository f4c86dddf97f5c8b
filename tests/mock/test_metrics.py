"""``/metrics`` of a real ``kmm run`` against the local exchange: scraped over HTTP while it
trades and parsed with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import math
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env["KMM__RECORD__RUNS_DIR"] = str(tmp_path / "runs")
    env["KMM__RECORD__LEDGER_PATH"] = str(tmp_path / "runs" / "ledger.sqlite")
    env["KMM__SIM__STATE_DIR"] = str(tmp_path / "state")
    env.update(values)
    return env


async def _metrics_url(tmp_path: Path) -> str:
    for _ in range(200):
        found = list((tmp_path / "runs").glob("*/metrics.url"))
        if found:
            return found[0].read_text().strip()
        await asyncio.sleep(0.05)
    raise AssertionError("no metrics.url in the run directory")


@pytest.mark.asyncio
async def test_a_running_bot_serves_its_metrics_and_prints_their_address(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "run", "--duration", "8",
        env=_env(tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        url = await _metrics_url(tmp_path)
        await asyncio.sleep(4)  # quoting for a few seconds
        async with aiohttp.ClientSession() as session, session.get(url) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await answer.text()
    finally:
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert f"  metrics: {url}" in out.decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    names = {name for name, _ in samples}
    assert {
        "kmm_order_events_total", "kmm_fills_total", "kmm_rate_limited_total",
        "kmm_live_orders", "kmm_write_tokens", "kmm_pnl_dollars", "kmm_position_contracts",
        "kmm_exposure_contracts", "kmm_halted", "kmm_feed_age_seconds", "kmm_ws_frames_total",
        "kmm_ws_bad_frames_total", "kmm_ws_reconnects_total",
    } <= names  # fmt: skip
    sent = samples[("kmm_order_events_total", (("code", ""), ("event", "sent")))]
    assert sent > 0
    assert samples[("kmm_ws_frames_total", ())] > 0
    assert samples[("kmm_halted", ())] == 0
    age = samples[("kmm_feed_age_seconds", ())]
    assert math.isfinite(age) and 0 <= age < 5
    decisions = samples[("kmm_frame_to_decision_seconds_count", ())]
    assert decisions > 0
    assert samples[("kmm_frame_to_decision_seconds_bucket", (("le", "+Inf"),))] == decisions
    assert 0 < samples[("kmm_frame_to_decision_seconds_sum", ())] < decisions


@pytest.mark.asyncio
async def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "run", "--duration", "2",
        env=_env(tmp_path, KMM__OPS__METRICS_PORT="null"), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()

    assert process.returncode == 0, err.decode()
    assert "metrics:" not in out.decode()
    assert not list((tmp_path / "runs").glob("*/metrics.url"))
