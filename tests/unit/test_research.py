"""The sweep's pure parts (the space file, the walk-forward windows, the objectives) and
calibration's (the reliability diagram and the Brier scores)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import optuna
import pytest

from kmm.backtest.scoreboard import RunScore
from kmm.config import KmmConfig
from kmm.errors import ConfigError
from kmm.research.calibrate import Pair, calibrate
from kmm.research.space import apply_params, load_space
from kmm.research.sweep import (
    IMPORTANCE_MIN_TRIALS,
    FoldResult,
    format_folds,
    objective,
    param_importances,
    scenario_sessions,
    walk_forward,
    walk_forward_summary,
)


def _space(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_file_maps_fields_to_ranges_and_choices(tmp_path: Path) -> None:
    path = _space(
        tmp_path,
        "strategy.gamma: {low: 0.1, high: 2.0, log: true}\n"
        "strategy.min_spread_cents: {low: 1, high: 6, step: 0.5}\n"
        "strategy.improve_ticks: {low: 0, high: 3}\n"
        "strategy.fair_value: {choices: [mid, microprice]}\n",
    )

    space = load_space(path, KmmConfig())

    assert [d.kind for d in space.dimensions] == ["real", "decimal", "whole", "choice"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        params = space.suggest(study.ask())
        assert 0.1 <= params["strategy.gamma"] <= 2.0
        spread = params["strategy.min_spread_cents"]
        assert isinstance(spread, Decimal) and spread % Decimal("0.5") == 0 and 1 <= spread <= 6
        assert params["strategy.improve_ticks"] in (0, 1, 2, 3)
        config = apply_params(KmmConfig(), params)
        assert config.strategy.min_spread_cents == spread
        assert config.strategy.fair_value == params["strategy.fair_value"]


def test_a_bad_space_file_names_each_problem(tmp_path: Path) -> None:
    path = _space(
        tmp_path,
        "strategy.gama: {low: 1, high: 2}\n"
        "strategy.min_spread_cents: {low: 1, high: 6}\n"
        "strategy.gamma: {low: 3, high: 2}\n"
        "strategy.improve_ticks: {low: 0.5, high: 3}\n"
        "strategy.fair_value: {low: 0, high: 1}\n"
        "risk: {low: 0, high: 1}\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_space(path, KmmConfig())

    assert caught.value.problems == [
        "space.yaml: strategy.gama: strategy has no field gama",
        "space.yaml: strategy.min_spread_cents: is an exact decimal: give a step (e.g. step: 0.5)",
        "space.yaml: strategy.gamma: low must be < high",
        "space.yaml: strategy.improve_ticks: is a whole number: low, high and step must be whole",
        "space.yaml: strategy.fair_value: is not a number: use choices",
        "space.yaml: risk: not a config field (section.field, e.g. strategy.gamma)",
    ]


def test_a_combination_the_config_refuses_is_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        apply_params(
            KmmConfig(),
            {"strategy.min_spread_cents": Decimal(9), "strategy.max_spread_cents": Decimal(3)},
        )

    assert caught.value.problems == [
        "min_spread, max_spread: need 0 <= min <= max <= 10000, got 900, 300"
    ]


def test_the_grid_of_a_space_lists_every_value(tmp_path: Path) -> None:
    path = _space(tmp_path, "strategy.min_spread_cents: {low: 1, high: 2, step: 0.5}\n"
                            "strategy.fair_value: {choices: [mid, microprice]}\n")  # fmt: skip

    grid = load_space(path, KmmConfig()).grid()

    assert grid == {"strategy.min_spread_cents": [1.0, 1.5, 2.0],
                    "strategy.fair_value": ["mid", "microprice"]}  # fmt: skip


def test_walk_forward_trains_on_a_block_and_tests_on_the_next() -> None:
    sessions = scenario_sessions(["calm", "jump"], range(1, 8), 3, 60.0)

    folds = walk_forward(sessions, 3)

    names = [([s.name for s in train], [s.name for s in test]) for train, test in folds]
    assert names == [
        (["seed 1", "seed 2"], ["seed 3", "seed 4"]),
        (["seed 3", "seed 4"], ["seed 5", "seed 6"]),
        (["seed 5", "seed 6"], ["seed 7"]),
    ]
    assert [j.label for j in sessions[0].jobs] == ["calm/1", "jump/1"]
    with pytest.raises(ConfigError, match="needs at least 4 sessions"):
        walk_forward(sessions[:3], 3)


def _score(net: str, drawdown: str = "0") -> RunScore:
    return RunScore("kmm", "calm", 1, 60.0, Decimal(net), 1, None, Decimal(0), Decimal(5), (),
                    None, Decimal(drawdown))  # fmt: skip


def test_the_objectives() -> None:
    runs = [_score("1.5", "0.5"), _score("-0.5", "1.5")]

    assert objective("net", runs) == 1.0
    assert objective("net_per_drawdown", runs) == 0.5
    assert objective("net_per_drawdown", [_score("0.2")]) == 20.0  # never below $0.01
    assert objective("mean_over_sd", runs) == pytest.approx(0.5 / 1.4142135, rel=1e-6)


def _fold(fold: int, in_sample: float, out_of_sample: float, **importance: float) -> FoldResult:
    return FoldResult(fold, {"strategy.gamma": 0.5}, in_sample, out_of_sample, f"seed {fold}",
                      f"seed {fold + 1}", dict(importance))  # fmt: skip


def test_the_walk_forward_mean_is_the_folds_out_of_sample_mean() -> None:
    results = [_fold(1, 2.0, 1.0), _fold(2, 4.0, -0.4)]

    summary = walk_forward_summary(results)

    assert (summary.folds, summary.in_sample, summary.out_of_sample) == (2, 3.0, 0.3)
    assert summary.efficiency == pytest.approx(0.1)
    assert walk_forward_summary([_fold(1, -1.0, 0.5)]).efficiency is None, "a ratio of losses"
    table = format_folds(results, Path("out"))
    assert "walk-forward mean: out of sample 0.3000, in sample 3.0000 (efficiency 0.10)" in table
    assert "best (fold 1, out of sample 1.0000, chosen on its test block): out/best.yaml" in table
    assert f"importance: none (a fold needs {IMPORTANCE_MIN_TRIALS} complete trials)" in table
    shown = format_folds([_fold(1, 1.0, 1.0, **{"strategy.gamma": 0.75, "x": 0.25})], Path("o"))
    assert "importance, fold 1: strategy.gamma 0.75, x 0.25" in shown


def _study(trials: int, value: object) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(7))
    study.optimize(value, n_trials=trials)  # type: ignore[arg-type]
    return study


def test_importance_names_the_parameter_the_objective_follows() -> None:
    def follows_gamma(trial: optuna.Trial) -> float:
        gamma = trial.suggest_float("gamma", 0.1, 2.0)
        trial.suggest_float("eta", 0.0, 1.0)
        return -((gamma - 1.0) ** 2)

    importance = param_importances(_study(40, follows_gamma))

    assert list(importance) == ["gamma", "eta"], "largest first"
    assert importance["gamma"] > 0.7
    assert sum(importance.values()) == pytest.approx(1.0)


def test_importance_is_empty_when_it_would_mean_nothing() -> None:
    def flat(trial: optuna.Trial) -> float:
        trial.suggest_float("gamma", 0.1, 2.0)
        return 1.0

    def follows_gamma(trial: optuna.Trial) -> float:
        return trial.suggest_float("gamma", 0.1, 2.0)

    assert param_importances(_study(IMPORTANCE_MIN_TRIALS - 1, follows_gamma)) == {}
    assert param_importances(_study(IMPORTANCE_MIN_TRIALS, follows_gamma)) == {"gamma": 1.0}
    assert param_importances(_study(20, flat)) == {}, "all objectives equal"


def test_calibration_bins_the_predictions_and_scores_them() -> None:
    pairs = [
        Pair(0.15, 0.0, 100, "A"), Pair(0.15, 0.0, 100, "A"), Pair(0.85, 1.0, 4000, "B"),
        Pair(0.85, 0.0, 4000, "B"), Pair(1.0, 1.0, 10_000, "C"),
    ]  # fmt: skip

    result = calibrate(pairs, bins=10)

    assert result.markets == 3
    low, high, last = result.bins[1], result.bins[8], result.bins[9]
    assert (low.count, low.predicted, low.realized) == (2, 0.15, 0.0)
    assert (high.count, high.predicted, high.realized) == (2, 0.85, 0.5)
    assert (last.count, last.realized) == (1, 1.0)  # a prediction of 1 is in the last bin
    brier = (2 * 0.15**2 + 0.15**2 + 0.85**2 + 0) / 5
    assert result.overall.brier == pytest.approx(brier)
    assert result.overall.base == pytest.approx(0.4 * 0.6)
    assert result.overall.skill == pytest.approx(1 - brier / 0.24)
    assert [s.count for s in result.by_horizon] == [2, 0, 2, 1]
    assert [s.label for s in result.by_horizon] == ["< 5 min", "5 min-30 min", "30 min-2 h",
                                                     "> 2 h"]  # fmt: skip
