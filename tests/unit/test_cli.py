"""Tests for kmm.cli: exit codes, config errors, and the offline demo end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmm.cli import main


def test_a_bad_config_file_exits_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("strategy:\n  gamma: -1\nrisk:\n  bogus: 3\n")

    status = main(["--config", str(config), "config"])

    err = capsys.readouterr().err.splitlines()
    assert status == 2
    assert err == [
        "kmm: config: strategy.gamma: must be > 0, got -1",
        "kmm: config: risk.bogus: unknown field",
    ]


def test_a_missing_config_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"

    status = main(["--config", str(missing), "config"])

    assert status == 2
    assert str(missing) in capsys.readouterr().err


def test_an_environment_override_error_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KMM__STRATEGY__GAMMA", "0")

    status = main(["config"])

    assert status == 2
    assert "KMM__STRATEGY__GAMMA" in capsys.readouterr().err


def test_config_prints_the_resolved_config_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KMM__STRATEGY__GAMMA", "0.25")

    status = main(["config"])

    printed = json.loads(capsys.readouterr().out)
    assert status == 0
    assert printed["strategy"]["gamma"] == 0.25


def test_an_unknown_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["frobnicate"]))
    assert exc.value.code == 2


def test_demo_runs_the_pipeline_and_prints_quotes_for_every_market(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["demo", "--markets", "3", "--rate", "2000", "--duration", "1.2"])

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines, "the demo printed nothing"
    last = lines[-1]
    assert "quoting=3/3" in last
    assert "gaps=0" in last
    assert "KXSYN" in last
