"""Latency models: constant, lognormal, empirical from a run, the config shape and its errors."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from kmm.backtest.latency import (
    ConstantLatency,
    EmpiricalLatency,
    LatencyConfig,
    LatencySpec,
    LognormalLatency,
    latencies_from_run,
)
from kmm.errors import ConfigError

_TAPE = (
    "ts,ticker,event,latency_ms\n"
    "2026-12-03T13:09:17.937580+00:00,T,quote,0.256\n"
    "2026-12-03T13:09:17.937590+00:00,T,fill,\n"
    "2026-12-03T13:09:17.937600+00:00,T,quote,12.005\n"
)
_ORDERS = (
    "ts,ticker,client_order_id,order_id,event,side,price,qty,code,reason\n"
    "2026-12-03T13:09:17.938233+00:00,T,c-1,,sent,bid,0.6600,5.00,,\n"
    "2026-12-03T13:09:17.938552+00:00,T,c-2,,sent,ask,0.6900,5.00,,\n"
    "2026-12-03T13:09:17.958233+00:00,T,c-1,o1,acked,bid,0.6600,5.00,,\n"
    "2026-12-03T13:09:17.948552+00:00,T,c-2,o2,acked,ask,0.6900,5.00,,\n"
    "2026-12-03T13:09:18.000000+00:00,T,c-3,,sent,ask,0.6900,5.00,,\n"
)


def _run(tmp_path: Path) -> Path:
    (tmp_path / "tape.csv").write_text(_TAPE)
    (tmp_path / "orders.csv").write_text(_ORDERS)
    return tmp_path


def test_constant() -> None:
    assert [ConstantLatency(5).draw() for _ in range(3)] == [5, 5, 5]
    with pytest.raises(ValueError):
        ConstantLatency(-1)


def test_lognormal_is_seeded_and_centred_on_its_median() -> None:
    a = LognormalLatency(20_000_000, 0.5, seed=3).draw()
    b = LognormalLatency(20_000_000, 0.5, seed=3).draw()
    assert a == b
    model = LognormalLatency(20_000_000, 0.5, seed=7)
    draws = [model.draw() for _ in range(4000)]
    assert min(draws) > 0
    assert 18_000_000 < statistics.median(draws) < 22_000_000
    assert LognormalLatency(20_000_000, 0.0).draw() == 20_000_000


def test_empirical_draws_only_its_samples_deterministically() -> None:
    samples = [1, 2, 3, 50]
    one, two = EmpiricalLatency(samples, seed=9), EmpiricalLatency(samples, seed=9)
    draws = [one.draw() for _ in range(200)]
    assert draws == [two.draw() for _ in range(200)]
    assert set(draws) == set(samples)
    with pytest.raises(ValueError):
        EmpiricalLatency([])


def test_latencies_from_run_reads_tape_and_order_round_trips(tmp_path: Path) -> None:
    got = latencies_from_run(_run(tmp_path))
    assert got.feed == (256_000, 12_005_000)
    assert got.order == (20_000_000, 10_000_000)  # c-3 never acked


def test_latencies_from_run_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tape\.csv: cannot read run file"):
        latencies_from_run(tmp_path)


def test_config_builds_each_kind(tmp_path: Path) -> None:
    run = _run(tmp_path)
    cfg = LatencyConfig.from_mapping(
        {
            "feed": {"kind": "constant", "ms": 5},
            "order": {"kind": "lognormal", "median_ms": 20, "sigma": 0.5},
        }
    )
    assert cfg.feed == LatencySpec("constant", ms=5.0)
    lat = cfg.build(seed=1)
    assert lat.feed.draw() == 5_000_000
    assert lat.order.draw() == cfg.build(seed=1).order.draw()
    emp = LatencyConfig.from_mapping({"order": {"kind": "empirical", "run": str(run)}}).build(2)
    assert emp.feed.draw() == 0
    assert {emp.order.draw() for _ in range(50)} == {20_000_000, 10_000_000}


def test_same_seed_same_draws() -> None:
    cfg = LatencyConfig.from_mapping({"order": {"kind": "lognormal", "median_ms": 20, "sigma": 1}})
    a, b = cfg.build(seed=4).order, cfg.build(seed=4).order
    assert [a.draw() for _ in range(10)] == [b.draw() for _ in range(10)]
    c = cfg.build(seed=5).order
    assert [a.draw() for _ in range(10)] != [c.draw() for _ in range(10)]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"feed": {"kind": "gauss"}}, "latency.feed.kind: expected one of"),
        ({"feed": {"kind": "constant", "ms": "5"}}, "latency.feed.ms: expected a number"),
        ({"feed": {"kind": "constant", "ms": -1}}, "latency.feed.ms: must not be negative"),
        ({"order": {"kind": "lognormal", "median_ms": 20}}, "latency.order.sigma: required"),
        ({"order": {"kind": "constant", "sigma": 1}}, "latency.order.sigma: unknown field"),
        ({"order": {"kind": "empirical"}}, "latency.order.run: expected a run directory"),
        ({"order": 5}, "latency.order: expected a mapping"),
        ({"wire": {}}, "latency.wire: unknown field"),
    ],
)
def test_config_errors_name_the_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        LatencyConfig.from_mapping(raw)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(message)


def test_empirical_run_without_samples_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "tape.csv").write_text("ts,latency_ms\n")
    (tmp_path / "orders.csv").write_text("ts,client_order_id,event\n")
    cfg = LatencyConfig.from_mapping({"order": {"kind": "empirical", "run": str(tmp_path)}})
    with pytest.raises(ConfigError, match=r"latency\.order\.run: .* recorded no order latencies"):
        cfg.build()
