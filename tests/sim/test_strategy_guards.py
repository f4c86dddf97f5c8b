"""kmm's guards against adverse selection, measured through the backtest on the ``jump`` flow:
the same runs with the fill cooldown, the jump guard and the toxicity guard switched off lose
more."""

from __future__ import annotations

from decimal import Decimal

from kmm.backtest.scoreboard import score_run
from kmm.config import KmmConfig

SEEDS = (1, 2, 3)
DURATION_S = 300.0


def _config(*, guards: bool) -> KmmConfig:
    config = KmmConfig()
    if guards:
        switches = {"toxic_trigger": 2}  # off by default: see config.example.yaml
    else:
        switches = {"jump_cents": Decimal(0), "fill_cooldown_ms": 0, "toxic_trigger": 0}
    return config.model_copy(update={"strategy": config.strategy.model_copy(update=switches)})


def test_the_guards_cut_the_jump_loss_against_the_same_runs_without_them() -> None:
    on = [score_run(_config(guards=True), "kmm", "jump", seed, DURATION_S) for seed in SEEDS]
    off = [score_run(_config(guards=False), "kmm", "jump", seed, DURATION_S) for seed in SEEDS]

    assert sum(r.net for r in on) > sum(r.net for r in off)
    assert all(r.within_cap for r in (*on, *off))
