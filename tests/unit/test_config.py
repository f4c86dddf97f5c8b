from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import get_args

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kmm.app import discovery_params
from kmm.config import (
    AuthConfig,
    ExecutionConfig,
    KmmConfig,
    RiskConfig,
    StrategyConfig,
    TierName,
    VenueConfig,
    load_config,
    mask_key_id,
    masked_dump,
    parse_duration,
    parse_port,
    parse_tickers,
    render_example,
)
from kmm.errors import ConfigError
from kmm.kalshi.constants import ENV_HOSTS, TIERS

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecret\n-----END RSA PRIVATE KEY-----\n"
SECTIONS = (
    "venue",
    "auth",
    "markets",
    "discovery",
    "volatility",
    "strategy",
    "risk",
    "execution",
    "exit",
    "ops",
    "record",
    "sim",
    "backtest",
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kmm.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ or {})
    return info.value.problems


# --------------------------------------------------------------------------- defaults and example


def test_the_defaults_are_a_valid_config_for_the_local_exchange() -> None:
    config = KmmConfig()

    assert config.venue.env == "sim"
    assert config.venue.rest_base() == ENV_HOSTS["sim"].rest
    assert load_config(None, {}) == config


def test_an_empty_file_is_a_valid_config(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), {}) == KmmConfig()


def test_a_section_with_every_field_commented_out_means_its_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "strategy:\n  # gamma: 0.2\nrisk:\n"), {})

    assert config == KmmConfig()


def test_the_example_file_loads_and_equals_the_defaults() -> None:
    assert load_config(EXAMPLE, {}) == KmmConfig()


def test_every_field_of_every_model_appears_in_the_example_file() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))

    assert tuple(data) == SECTIONS
    for name, info in KmmConfig.model_fields.items():
        section = info.annotation
        assert isinstance(section, type)
        assert set(data[name]) == set(section.model_fields), name


def test_the_example_file_is_the_rendering_of_the_field_descriptions() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == render_example(), (
        "regenerate: python -m kmm.config > config.example.yaml"
    )


def test_every_field_has_a_description() -> None:
    for info in KmmConfig.model_fields.values():
        section = info.annotation
        assert isinstance(section, type)
        for name, field in section.model_fields.items():
            assert field.description, name


def test_the_tier_names_are_the_tiers_of_the_constants() -> None:
    assert set(get_args(TierName)) == set(TIERS)


# --------------------------------------------------------------------------- one line per problem


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("strategy:\n  gamma: -1\n", "strategy.gamma: must be > 0, got -1"),
        ("strategy:\n  gamme: 2\n", "strategy.gamme: unknown field"),
        ("strategi:\n  gamma: 2\n", "strategi: unknown section"),
        ("venue:\n  env: live\n", "venue.env: must be 'sim', 'demo' or 'prod', got 'live'"),
        ("sim:\n  port: 70000\n", "sim.port: must be <= 65535, got 70000"),
        ("sim:\n  markets: 2.5\n", "sim.markets: must be a whole number, got 2.5"),
        ("sim:\n  markets: yes\n", "sim.markets: must be a number, not a boolean, got true"),
        ("strategy:\n  gamma: .inf\n", "strategy.gamma: must be a finite number, got inf"),
        ("strategy:\n  gamma: fast\n", "strategy.gamma: must be a number, got 'fast'"),
        ("strategy: 5\n", "strategy: must be a mapping, got 5"),
        ("record:\n  capture: maybe\n", "record.capture: must be true or false, got 'maybe'"),
        ("markets:\n  tickers: [A, A]\n", "markets.tickers: A is listed twice, got [A, A]"),
        (
            "strategy:\n  order_size_contracts: 0.001\n",
            "strategy.order_size_contracts: must be in steps of 0.01 contract, got 0.001",
        ),
        (
            "strategy:\n  edge_cents: 0.125\n",
            "strategy.edge_cents: must be in steps of 0.01¢ ($0.0001), got 0.125",
        ),
        (
            "risk:\n  max_daily_loss_dollars: 10.00005\n",
            "risk.max_daily_loss_dollars: must be in steps of $0.0001, got 10.00005",
        ),
        (
            "venue:\n  rest_url: ftp://example.com\n",
            "venue.rest_url: must be a URL starting with http:// or https://, "
            "got 'ftp://example.com'",
        ),
        (
            "execution:\n  client_order_prefix: kmm run\n",
            "execution.client_order_prefix: must be 1 to 40 letters, digits, '-' or '_', "
            "got 'kmm run'",
        ),
    ],
)
def test_each_kind_of_problem_gives_its_exact_line(tmp_path: Path, text: str, line: str) -> None:
    assert problems(tmp_path, text) == [line]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "strategy:\n  sigma_min_per_sqrt_s: 0.5\n",
            "strategy.sigma_min_per_sqrt_s: must be <= sigma_default_per_sqrt_s (0.001), got 0.5",
        ),
        (
            "strategy:\n  kappa_default_per_dollar: 1000\n",
            "strategy.kappa_max_per_dollar: must be >= kappa_default_per_dollar (1000), got 500",
        ),
        (
            "strategy:\n  lot_size_contracts: 6\n",
            "strategy.lot_size_contracts: must be <= order_size_contracts (5), got 6",
        ),
        (
            "strategy:\n  max_order_contracts: 4\n",
            "strategy.max_order_contracts: must be >= order_size_contracts (5), got 4",
        ),
        (
            "strategy:\n  extreme_high_cents: 5\n",
            "strategy.extreme_high_cents: must be > extreme_low_cents (5), got 5",
        ),
        (
            "risk:\n  max_position_contracts: 600\n",
            "risk.max_total_position_contracts: must be >= max_position_contracts (600), got 500",
        ),
        (
            "risk:\n  wind_down_before_close_s: 30\n",
            "risk.wind_down_before_close_s: must be >= no_quote_before_close_s (60), got 30",
        ),
        (
            "venue:\n  reconnect_initial_s: 60\n",
            "venue.reconnect_max_s: must be >= reconnect_initial_s (60), got 30",
        ),
    ],
)
def test_a_cross_field_problem_names_both_fields(tmp_path: Path, text: str, line: str) -> None:
    assert problems(tmp_path, text) == [line]


def test_several_problems_give_several_lines(tmp_path: Path) -> None:
    text = "venue:\n  env: live\nstrategy:\n  gamma: -1\n  gamme: 2\nsim:\n  port: -1\n"

    assert problems(tmp_path, text) == [
        "venue.env: must be 'sim', 'demo' or 'prod', got 'live'",
        "strategy.gamma: must be > 0, got -1",
        "strategy.gamme: unknown field",
        "sim.port: must be >= 0, got -1",
    ]


def test_a_missing_file_gives_one_line_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as info:
        load_config(path, {})

    assert info.value.problems == [f"{path}: config file not found"]


def test_a_yaml_syntax_error_gives_one_line_with_the_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, "strategy:\n  gamma: 0.5\n  eta: [1\n")

    with pytest.raises(ConfigError) as info:
        load_config(path, {})

    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{path}: YAML syntax error at line 4, column 1: ")


def test_a_duplicate_key_is_an_error_with_its_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, "strategy:\n  gamma: 0.5\n  gamma: 0.2\n")

    with pytest.raises(ConfigError) as info:
        load_config(path, {})

    assert info.value.problems == [
        f"{path}: YAML syntax error at line 3, column 3: duplicate key 'gamma'"
    ]


@pytest.mark.parametrize(("text", "kind"), [("- venue\n", "a list"), ("sim\n", "'sim'")])
def test_a_top_level_that_is_not_a_mapping_is_one_clear_error(
    tmp_path: Path, text: str, kind: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_config(path, {})

    assert info.value.problems == [f"{path}: top level must be a mapping of sections, got {kind}"]


def test_a_config_error_is_not_chained_to_the_pydantic_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "strategy:\n  gamma: -1\n"), {})

    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


# --------------------------------------------------------------------------- environment overrides


def test_an_environment_override_sets_a_field_with_its_type(tmp_path: Path) -> None:
    environ = {
        "KMM__STRATEGY__GAMMA": "0.2",
        "KMM__STRATEGY__ORDER_SIZE_CONTRACTS": "2.5",
        "KMM__VENUE__LIVE": "true",
        "KMM__SIM__PORT": "0",
        "PATH": "/usr/bin",
    }

    config = load_config(write(tmp_path, "strategy:\n  gamma: 0.9\n"), environ)

    assert config.strategy.gamma == 0.2
    assert config.strategy.order_size_contracts == Decimal("2.5")
    assert config.venue.live is True
    assert config.sim.port == 0


@pytest.mark.parametrize("value", ["[KXA-1, KXB-2]", "KXA-1,KXB-2", "KXA-1, KXB-2"])
def test_a_list_override_is_read_as_a_flow_sequence_or_a_comma_list(value: str) -> None:
    config = load_config(None, {"KMM__MARKETS__TICKERS": value})

    assert config.markets.tickers == ("KXA-1", "KXB-2")


def test_a_text_override_keeps_its_raw_string() -> None:
    config = load_config(None, {"KMM__EXECUTION__CLIENT_ORDER_PREFIX": "007"})

    assert config.execution.client_order_prefix == "007"


def test_an_override_with_lowercase_names_is_accepted() -> None:
    config = load_config(None, {"KMM__risk__max_open_orders": "7"})

    assert config.risk.max_open_orders == 7


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("KMM__STRATEGI__GAMMA", "KMM__STRATEGI__GAMMA: unknown section 'strategi'"),
        (
            "KMM__STRATEGY__GAMME",
            "KMM__STRATEGY__GAMME: unknown field 'gamme' in section 'strategy'",
        ),
        ("KMM__STRATEGY", "KMM__STRATEGY: expected KMM__SECTION__FIELD"),
        ("KMM__A__B__C", "KMM__A__B__C: expected KMM__SECTION__FIELD"),
    ],
)
def test_an_override_of_an_unknown_name_is_an_error_naming_the_variable(
    name: str, line: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {name: "1"})

    assert info.value.problems == [line]


def test_a_bad_override_value_names_the_field_and_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"KMM__STRATEGY__GAMMA": "-1"})

    assert info.value.problems == [
        "strategy.gamma: must be > 0, got -1 (from KMM__STRATEGY__GAMMA)"
    ]


def test_an_override_that_is_not_yaml_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"KMM__MARKETS__TICKERS": "[A, B"})

    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("KMM__MARKETS__TICKERS: not a YAML value (line 1")


def test_override_problems_and_file_problems_are_reported_together(tmp_path: Path) -> None:
    environ = {"KMM__NOPE__X": "1"}

    lines = problems(tmp_path, "strategy:\n  gamma: -1\n", environ)

    assert lines == [
        "KMM__NOPE__X: unknown section 'nope'",
        "strategy.gamma: must be > 0, got -1",
    ]


# --------------------------------------------------------------------------- immutability


def test_a_config_is_frozen() -> None:
    config = KmmConfig()

    with pytest.raises(ValidationError):
        config.strategy.gamma = 1.0
    with pytest.raises(ValidationError):
        config.strategy = StrategyConfig()


def test_a_config_is_hashable_and_its_lists_are_tuples() -> None:
    config = load_config(None, {"KMM__MARKETS__SERIES": "[KXHIGHNY]"})

    assert hash(config) == hash(load_config(None, {"KMM__MARKETS__SERIES": "KXHIGHNY"}))
    assert isinstance(config.markets.series, tuple)


# --------------------------------------------------------------------------- secrets


def test_a_private_key_in_the_config_is_refused_without_being_echoed(tmp_path: Path) -> None:
    text = yaml.safe_dump({"auth": {"key_id": PEM}})

    lines = problems(tmp_path, text)

    assert lines == [
        "auth.key_id: holds a private key; keep the PEM in a file (auth.private_key_path) or "
        "an environment variable (auth.private_key_env), never in the configuration"
    ]
    assert "MIIE" not in lines[0]


def test_a_private_key_anywhere_in_the_config_is_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump({"markets": {"tickers": ["KXA", PEM]}, "auth": {"private_key": PEM}})

    lines = problems(tmp_path, text)

    assert len(lines) == 1
    assert lines[0].startswith("auth.private_key: holds a private key")


def test_a_private_key_given_by_override_is_refused_and_the_variable_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"KMM__AUTH__KEY_ID": PEM})

    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("auth.key_id: holds a private key")
    assert info.value.problems[0].endswith("(from KMM__AUTH__KEY_ID)")
    assert "MIIE" not in str(info.value)


def test_a_private_key_is_never_shown_as_a_bad_value(tmp_path: Path) -> None:
    path = write(tmp_path, PEM)

    with pytest.raises(ConfigError) as info:
        load_config(path, {})

    assert "MIIE" not in str(info.value)


def test_kalshi_environments_need_a_key_id_and_a_key_source(tmp_path: Path) -> None:
    lines = problems(tmp_path, "venue:\n  env: prod\nauth:\n  key_id: abc\n")

    assert lines == [
        "auth: key_id and a private key (private_key_path or private_key_env) are required "
        "when venue.env is prod"
    ]


def test_a_kalshi_environment_with_credentials_is_valid(tmp_path: Path) -> None:
    text = "venue:\n  env: demo\nauth:\n  key_id: abc\n  private_key_env: KALSHI_KEY\n"

    config = load_config(write(tmp_path, text), {})

    assert config.auth.complete
    assert config.venue.rest_base() == ENV_HOSTS["demo"].rest


def test_a_key_file_and_a_key_variable_together_are_refused(tmp_path: Path) -> None:
    text = "auth:\n  private_key_path: k.pem\n  private_key_env: KALSHI_KEY\n"

    assert problems(tmp_path, text) == [
        "auth.private_key_env: set only one of private_key_path and private_key_env, "
        "got 'KALSHI_KEY'"
    ]


def test_describe_masks_the_key_id() -> None:
    auth = AuthConfig(key_id="a952bcbe-ec3b-4b5b-b8f9-11dae589608c", private_key_path=Path("k.pem"))

    assert auth.describe() == "key a952…, private key from file k.pem"
    assert "ec3b" not in repr(auth)
    assert AuthConfig().describe() == "no credentials"
    assert mask_key_id("abcd") == "…"


def test_masked_dump_masks_the_key_id_and_loads_back(tmp_path: Path) -> None:
    config = KmmConfig(
        auth=AuthConfig(key_id="a952bcbe-ec3b-4b5b-b8f9-11dae589608c", private_key_env="K"),
        strategy=StrategyConfig(order_size_contracts=Decimal("2.5")),
    )

    dumped = masked_dump(config)
    reloaded = load_config(write(tmp_path, yaml.safe_dump(dumped)), {})

    assert dumped["auth"]["key_id"] == "a952…"
    assert dumped["strategy"]["order_size_contracts"] == "2.5"
    assert reloaded.strategy == config.strategy
    assert reloaded.auth.private_key_env == "K"


def test_the_private_key_is_read_from_the_named_variable() -> None:
    auth = AuthConfig(key_id="abc", private_key_env="KALSHI_KEY")

    assert auth.private_key_pem({"KALSHI_KEY": PEM}) == PEM.encode()


def test_the_private_key_is_read_from_the_named_file(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text(PEM, encoding="ascii")

    assert AuthConfig(private_key_path=key).private_key_pem({}) == PEM.encode()


@pytest.mark.parametrize(
    ("auth", "environ", "line"),
    [
        (
            AuthConfig(private_key_env="KALSHI_KEY"),
            {},
            "auth.private_key_env: environment variable KALSHI_KEY is not set",
        ),
        (
            AuthConfig(private_key_env="KALSHI_KEY"),
            {"KALSHI_KEY": "hello"},
            "auth.private_key_env: KALSHI_KEY does not hold a PEM private key",
        ),
        (
            AuthConfig(),
            {},
            "auth: no private key configured (set private_key_path or private_key_env)",
        ),
    ],
)
def test_a_missing_private_key_is_a_config_error(
    auth: AuthConfig, environ: dict[str, str], line: str
) -> None:
    with pytest.raises(ConfigError) as info:
        auth.private_key_pem(environ)

    assert info.value.problems == [line]


def test_an_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"

    with pytest.raises(ConfigError) as info:
        AuthConfig(private_key_path=path).private_key_pem({})

    assert info.value.problems == [
        f"auth.private_key_path: cannot read {path}: No such file or directory"
    ]


# --------------------------------------------------------------------------- converters


def test_contract_counts_convert_exactly_to_qty(tmp_path: Path) -> None:
    text = "strategy:\n  order_size_contracts: 2.5\n  lot_size_contracts: 0.01\n"

    config = load_config(write(tmp_path, text), {})

    assert config.strategy.base_qty == 250
    assert config.strategy.lot_qty == 1
    assert config.strategy.max_order_qty == 1000


def test_a_float_given_in_code_converts_exactly() -> None:
    strategy = StrategyConfig(order_size_contracts=2.3, edge_cents=0.1)  # type: ignore[arg-type]

    assert strategy.base_qty == 230
    assert strategy.edge == 10


def test_cents_convert_exactly_to_prices(tmp_path: Path) -> None:
    text = "strategy:\n  extreme_low_cents: 0.5\n  extreme_high_cents: 99.25\n  edge_cents: 0.01\n"

    strategy = load_config(write(tmp_path, text), {}).strategy

    assert (strategy.extreme_low, strategy.extreme_high, strategy.edge) == (50, 9925, 1)


def test_dollars_convert_exactly_to_money_and_counts_to_qty() -> None:
    risk = RiskConfig(
        max_order_notional_dollars=Decimal("12.3456"),
        max_daily_loss_dollars=Decimal("0.0001"),
        order_group_contracts_limit=Decimal("100.5"),
        drift_tolerance_contracts=Decimal("0.01"),
    )

    assert risk.max_order_notional == 12_345_600
    assert risk.max_daily_loss == 100
    assert risk.max_drawdown == 150_000_000
    assert risk.max_position == 5000
    assert risk.max_total_position == 50_000
    assert risk.order_group_limit == 10050
    assert risk.drift_tolerance == 1
    assert RiskConfig().order_group_limit is None


def test_durations_convert_to_nanoseconds() -> None:
    execution = ExecutionConfig(min_rest_ms=250, target_freshness_ms=1500, reconcile_interval_s=2.5)

    assert execution.min_rest_ns == 250_000_000
    assert execution.target_freshness_ns == 1_500_000_000
    assert execution.reconcile_interval_ns == 2_500_000_000
    assert execution.min_qty_change == 100
    assert RiskConfig(stale_book_s=0.5).stale_book_ns == 500_000_000


def test_a_decimal_number_in_yaml_never_passes_through_float(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "risk:\n  max_position_contracts: 0.29\n"), {})

    assert config.risk.max_position == 29  # float: int(0.29 * 100) == 28


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=10**9))
def test_any_two_decimal_count_converts_to_its_exact_qty(hundredths: int) -> None:
    text = f"{hundredths // 100}.{hundredths % 100:02d}"
    environ = {
        "KMM__RISK__MAX_POSITION_CONTRACTS": text,
        "KMM__RISK__MAX_TOTAL_POSITION_CONTRACTS": text,
    }

    config = load_config(None, environ)

    assert config.risk.max_position == hundredths


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=10**6), st.integers(min_value=3, max_value=6))
def test_any_count_finer_than_a_hundredth_is_refused(units: int, places: int) -> None:
    if units % 10 == 0:
        units += 1
    text = f"{units // 10**places}.{units % 10**places:0{places}d}"

    with pytest.raises(ConfigError) as info:
        load_config(None, {"KMM__RISK__DRIFT_TOLERANCE_CONTRACTS": text})

    assert info.value.problems == [
        f"risk.drift_tolerance_contracts: must be in steps of 0.01 contract, got {text} "
        "(from KMM__RISK__DRIFT_TOLERANCE_CONTRACTS)"
    ]


# --------------------------------------------------------------------------- other sections


def test_urls_are_overridable_and_lose_a_trailing_slash() -> None:
    venue = VenueConfig(
        env="prod",
        rest_url="https://api.elections.kalshi.com/trade-api/v2/",
        ws_url="wss://api.elections.kalshi.com/trade-api/ws/v2/",
    )

    assert venue.rest_base() == "https://api.elections.kalshi.com/trade-api/v2"
    assert venue.ws_base() == "wss://api.elections.kalshi.com/trade-api/ws/v2"


@pytest.mark.parametrize(
    ("rest_url", "ws_url"),
    [
        ("http://127.0.0.1:8181/trade-api/v2", "ws://127.0.0.1:8181/trade-api/ws/v2"),
        (
            "https://api.elections.kalshi.com/trade-api/v2",
            "wss://api.elections.kalshi.com/trade-api/ws/v2",
        ),
        ("https://demo-api.kalshi.co/trade-api/v2/", "wss://demo-api.kalshi.co/trade-api/ws/v2"),
        ("http://localhost/proxy/trade-api/v2", "ws://localhost/proxy/trade-api/ws/v2"),
    ],
)
def test_a_rest_url_alone_gives_the_websocket_url_on_its_own_host(
    rest_url: str, ws_url: str
) -> None:
    for env in ("sim", "demo", "prod"):
        venue = VenueConfig(env=env, rest_url=rest_url)  # type: ignore[arg-type]

        assert venue.ws_base() == ws_url
        assert VenueConfig(env=env, ws_url=ws_url).rest_base() == rest_url.rstrip("/")  # type: ignore[arg-type]


def test_the_environments_own_rest_url_gives_its_own_websocket_host() -> None:
    for env, hosts in ENV_HOSTS.items():
        venue = VenueConfig(env=env, rest_url=hosts.rest)  # type: ignore[arg-type]

        assert (venue.rest_base(), venue.ws_base()) == (hosts.rest, hosts.ws)
        assert VenueConfig(env=env).ws_base() == hosts.ws  # type: ignore[arg-type]


def test_rest_and_websocket_urls_on_different_hosts_are_refused_in_one_line(
    tmp_path: Path,
) -> None:
    text = (
        "venue:\n  rest_url: http://127.0.0.1:8181/trade-api/v2\n"
        "  ws_url: ws://127.0.0.1:8080/trade-api/ws/v2\n"
    )

    assert problems(tmp_path, text) == [
        "venue.ws_url: names host 127.0.0.1:8080 but venue.rest_url names 127.0.0.1:8181: "
        "kmm would trade on one venue and read another's books (set "
        "venue.allow_different_hosts: true if that is intended)"
    ]


def test_different_hosts_are_allowed_with_the_override_and_for_kalshis_own_pairs(
    tmp_path: Path,
) -> None:
    text = (
        "venue:\n  rest_url: http://127.0.0.1:8181/trade-api/v2\n"
        "  ws_url: ws://127.0.0.1:8080/trade-api/ws/v2\n  allow_different_hosts: true\n"
    )

    venue = load_config(write(tmp_path, text), {}).venue
    prod = VenueConfig(env="prod", rest_url=ENV_HOSTS["prod"].rest, ws_url=ENV_HOSTS["prod"].ws)

    assert venue.ws_base() == "ws://127.0.0.1:8080/trade-api/ws/v2"
    assert prod.ws_base() == ENV_HOSTS["prod"].ws


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("rest_url", "http://127.0.0.1:8080", "must end with /trade-api/v2"),
        (
            "rest_url",
            "http://127.0.0.1:70000/trade-api/v2",
            "must name a host and a port from 1 to 65535",
        ),
        (
            "rest_url",
            "http://127.0.0.1:0/trade-api/v2",
            "must name a host and a port from 1 to 65535",
        ),
        ("rest_url", "http:///trade-api/v2", "must name a host and a port from 1 to 65535"),
        ("ws_url", "ws://127.0.0.1:8080/trade-api/v2", "must end with /trade-api/ws/v2"),
        (
            "ws_url",
            "http://127.0.0.1:8080/trade-api/ws/v2",
            "must be a URL starting with ws:// or wss://",
        ),
    ],
)
def test_a_url_without_the_api_path_or_with_a_bad_port_is_refused(
    tmp_path: Path, field: str, value: str, reason: str
) -> None:
    assert problems(tmp_path, f"venue:\n  {field}: {value}\n") == [
        f"venue.{field}: {reason}, got '{value}'"
    ]


def test_the_sim_keeps_its_state_outside_the_runs_directory() -> None:
    config = KmmConfig()

    assert config.record.runs_dir not in config.sim.state_dir.parents


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1.5", 1.5), ("30s", 30.0), ("10m", 600.0), ("1h", 3600.0), ("2.5m", 150.0)],
)
def test_a_duration_is_plain_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "10x", "0", "0s", "-5", "1e3", "ten"])
def test_a_bad_duration_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_duration(text)


def test_ports_from_0_to_65535_are_accepted_and_others_refused() -> None:
    assert (parse_port("0"), parse_port("8080"), parse_port("65535")) == (0, 8080, 65535)
    for text in ("65536", "-1", "99999", "http"):
        with pytest.raises(ValueError, match=r"port|65535"):
            parse_port(text)


def test_tickers_are_split_on_commas() -> None:
    assert parse_tickers("KXA-26, KXB-26,", "--markets") == ("KXA-26", "KXB-26")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", "--markets: names no ticker (leave it out to use markets in config)"),
        (" , ", "--markets: names no ticker (leave it out to use markets in config)"),
        ("kxa-26,KXB-26,kxc", "--markets: tickers are upper case: kxa-26, kxc"),
        ("KXA-26,KXA-26", "--markets: KXA-26 is listed twice"),
    ],
)
def test_an_unusable_ticker_list_is_one_line_naming_the_problem(text: str, line: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tickers(text, "--markets")

    assert info.value.problems == [line]


def test_lowercase_tickers_in_the_config_are_refused_naming_them(tmp_path: Path) -> None:
    assert problems(tmp_path, "markets:\n  tickers: [KXA, kxb]\n") == [
        "markets.tickers: tickers are upper case: kxb, got [KXA, kxb]"
    ]


def test_prod_trading_needs_the_live_flag() -> None:
    assert VenueConfig(env="demo").trading_allowed
    assert not VenueConfig(env="prod").trading_allowed
    assert VenueConfig(env="prod", live=True).trading_allowed


def test_the_log_level_is_case_insensitive(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "record:\n  log_level: debug\n"), {})

    assert config.record.log_level == "DEBUG"


def test_discovery_windows_read_as_a_mapping_or_as_rows(tmp_path: Path) -> None:
    mapping = "discovery:\n  close_windows: {default: [3600, 86400], Sports: [60, 600]}\n"
    rows = "discovery:\n  close_windows: [[default, 3600, 86400], [Sports, 60, 600]]\n"

    first = load_config(write(tmp_path, mapping), {})
    second = load_config(write(tmp_path, rows), {})

    assert first == second
    assert discovery_params(first).window("Sports") == (60.0, 600.0)
    assert discovery_params(first).window("Economics") == (3600.0, 86400.0)
    with pytest.raises(ConfigError, match=r"discovery\.close_windows"):
        load_config(write(tmp_path, "discovery:\n  close_windows: {Sports: soon}\n"), {})
