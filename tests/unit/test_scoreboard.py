"""The scoreboard's summaries and goals, on hand-made scores (kmm.backtest.scoreboard)."""

from __future__ import annotations

from decimal import Decimal

from kmm.backtest.scoreboard import RunScore, Scoreboard, format_board, goals


def _score(model: str, scenario: str, seed: int, net: str, inventory: str = "10") -> RunScore:
    return RunScore(
        model=model,
        scenario=scenario,
        seed=seed,
        duration_s=1800.0,
        net=Decimal(net),
        fills=100,
        maker_share=Decimal("0.9"),
        max_inventory=Decimal(inventory),
        cap=Decimal(50),
        markouts=((1, Decimal("0.001")), (10, None), (60, Decimal("-0.002"))),
        halted=None,
    )


BOARD = Scoreboard(
    (
        _score("kmm", "calm", 1, "3.00"),
        _score("kmm", "calm", 2, "5.00"),
        _score("fixed", "calm", 1, "1.00"),
        _score("fixed", "calm", 2, "2.00"),
        _score("join", "calm", 1, "6.00"),
        _score("join", "calm", 2, "0.00"),
        _score("kmm", "jump", 1, "-4.00"),
        _score("kmm", "jump", 2, "-6.00", inventory="51"),
        _score("fixed", "jump", 1, "-8.00"),
        _score("fixed", "jump", 2, "-12.00"),
        _score("join", "jump", 1, "-30.00"),
        _score("join", "jump", 2, "-10.00"),
    )
)


def test_the_board_ranks_kmm_by_mean_net_pnl_over_seeds() -> None:
    assert BOARD.mean_net("calm", "kmm") == Decimal(4)
    assert BOARD.rank("calm") == 1  # 4.00 against 1.50 and 3.00
    assert BOARD.rank("jump") == 1  # -5.00 against -10.00 and -20.00
    assert BOARD.rank("calm", "fixed") == 3


def test_the_goals_are_checked_per_scenario_and_over_every_run() -> None:
    checks = {goal: (met, figures) for goal, met, figures in goals(BOARD)}

    assert checks["calm: kmm >= the best baseline"][0]
    assert checks["calm: kmm positive"][0]
    assert checks["jump: kmm >= the best baseline"][0]
    # half of the best baseline's loss (fixed, -10.00) is -5.00: kmm's -5.00 just meets it
    assert checks["jump: kmm's loss at most half the best baseline's"] == (
        True,
        "kmm $-5.00, half of fixed's $-5.00",
    )
    met, figures = checks["every run within its inventory cap"]
    assert not met and "kmm/jump/2" in figures


def test_the_printed_board_has_a_table_per_scenario_and_the_goals() -> None:
    text = format_board(BOARD)

    assert "calm (2 seeds x 30 min; kmm ranks 1 of 3):" in text
    assert "jump (2 seeds x 30 min; kmm ranks 1 of 3):" in text
    kmm_calm = next(line for line in text.splitlines() if line.strip().startswith("kmm"))
    assert kmm_calm.split()[1:3] == ["4.00", "1.41"]  # mean and sd of 3.00, 5.00
    assert "NOT met  every run within its inventory cap" in text
