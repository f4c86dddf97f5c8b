"""Tests for kmm.cli: exit codes, config errors, and the offline demo end to end."""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path

import pytest

from kmm.cli import main
from tests.unit.test_report import write_run


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


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def no_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No developer ``KMM__*`` variables, no ./config.yaml: runs go under ``tmp_path``."""
    for name in [n for n in os.environ if n.startswith("KMM__")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--version"])

    assert status == 0
    assert capsys.readouterr().out.strip() == f"kmm {version('kmm')}"


def test_run_is_the_default_subcommand_so_its_flags_work_at_the_top_level(
    no_overrides: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--env", "demo"])

    assert status == 2
    assert _one_line(capsys.readouterr().err) == (
        "kmm: auth: env demo needs auth.key_id and auth.private_key_path (or _env)"
    )


@pytest.mark.parametrize("before", [True, False])
def test_config_is_accepted_before_or_after_the_subcommand(
    no_overrides: Path, capsys: pytest.CaptureFixture[str], before: bool
) -> None:
    config = no_overrides / "mine.yaml"
    config.write_text("strategy:\n  gamma: 0.375\n")
    argv = ["--config", str(config), "config"] if before else ["config", "--config", str(config)]

    status = main(argv)

    assert status == 0
    assert json.loads(capsys.readouterr().out)["strategy"]["gamma"] == 0.375


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "--log-format", "json", "config"],
        ["config", "--log-level", "DEBUG", "--log-format=json"],
        ["--log-level=debug", "config", "--log-format", "json"],
    ],
)
def test_log_level_and_format_are_accepted_anywhere_and_set_the_record_section(
    no_overrides: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    status = main(argv)

    assert status == 0
    record = json.loads(capsys.readouterr().out)["record"]
    assert (record["log_level"], record["log_format"]) == ("DEBUG", "json")


def test_a_bad_log_format_is_one_line_and_exit_2(
    no_overrides: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["--log-format", "yaml", "config"])

    assert status == 2
    assert "--log-format: invalid choice: 'yaml'" in _one_line(capsys.readouterr().err)


def test_demo_takes_a_duration_with_a_unit(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["demo", "--markets", "1", "--rate", "500", "--duration", "1s"])

    assert status == 0
    assert "quoting=1/1" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.parametrize("command", ["run", "capture", "demo"])
def test_a_bad_duration_is_one_line_naming_the_flag(
    no_overrides: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    status = main([command, "--duration", "soon"])

    assert status == 2
    assert _one_line(capsys.readouterr().err) == (
        f"kmm {command}: argument --duration: not a duration like 90, 30s, 10m or 1h: 'soon' "
        f"(see kmm {command} --help)"
    )


@pytest.mark.timeout(10)
@pytest.mark.parametrize("port", ["65536", "-1", "http"])
def test_a_port_out_of_range_is_refused_in_one_line(
    no_overrides: Path, capsys: pytest.CaptureFixture[str], port: str
) -> None:
    status = main(["sim", "--port", port])

    assert status == 2
    assert "argument --port" in _one_line(capsys.readouterr().err)


def test_an_unknown_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["run", "--frobnicate"])

    assert status == 2
    assert _one_line(capsys.readouterr().err) == (
        "kmm: unrecognized arguments: --frobnicate (see kmm --help)"
    )


@pytest.mark.parametrize(
    ("markets", "line"),
    [
        ("", "kmm: --markets: names no ticker (leave it out to use markets in config)"),
        ("kxfed-26dec-t4.00", "kmm: --markets: tickers are upper case: kxfed-26dec-t4.00"),
        ("KXA-26,kxb-26", "kmm: --markets: tickers are upper case: kxb-26"),
    ],
)
@pytest.mark.parametrize("env", ["sim", "demo", "prod"])
def test_an_empty_or_lowercase_markets_list_is_one_line_and_exit_2(
    no_overrides: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: str,
    markets: str,
    line: str,
) -> None:
    monkeypatch.setenv("KMM__AUTH__KEY_ID", "a952bcbe-ec3b-4b5b-b8f9-11dae589608c")
    monkeypatch.setenv("KMM__AUTH__PRIVATE_KEY_PATH", str(no_overrides / "never-read.pem"))

    status = main(["run", "--env", env, "--live", "--markets", markets])

    assert status == 2
    assert _one_line(capsys.readouterr().err) == line


def test_rest_and_websocket_urls_on_different_hosts_refuse_to_start(
    no_overrides: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KMM__VENUE__REST_URL", "http://127.0.0.1:8181/trade-api/v2")
    monkeypatch.setenv("KMM__VENUE__WS_URL", "ws://127.0.0.1:8080/trade-api/ws/v2")

    status = main(["run", "--duration", "1"])

    assert status == 2
    assert _one_line(capsys.readouterr().err).startswith(
        "kmm: config: venue.ws_url: names host 127.0.0.1:8080 but venue.rest_url names "
        "127.0.0.1:8181"
    )


def test_report_without_an_argument_opens_the_newest_run_not_the_sims_state(
    no_overrides: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: an old default sim.state_dir under runs/ sorts after every run
    runs = no_overrides / "runs"
    write_run(runs / "20261123T120000Z")
    newest = write_run(runs / "20261124T080000Z")
    (runs / "sim").mkdir()
    (runs / "sim" / "keys.json").write_text("[]")

    # Act
    status = main(["report"])

    # Assert
    assert status == 0, capsys.readouterr().err
    assert (newest / "report.json").is_file()
    assert not (runs / "20261123T120000Z" / "report.json").exists()
