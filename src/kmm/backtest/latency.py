"""Latency models for the backtest: feed delay and order round trip, in nanoseconds.

Theory of operation
-------------------
Two delays shape what a backtested quote sees: the **feed** delay (an exchange event reaches
our core later than it happened) and the **order** delay (our request reaches the exchange
later than we sent it, and its answer comes back later still). Each is a
:class:`LatencyModel` that draws one delay per use:

* :class:`ConstantLatency` — always the same;
* :class:`LognormalLatency` — ``median * exp(sigma * N(0, 1))``, seeded;
* :class:`EmpiricalLatency` — drawn uniformly from recorded samples, seeded; the samples of
  a live run come from :func:`latencies_from_run` (its ``tape.csv`` ``latency_ms`` column for
  the feed-to-decision time, its ``orders.csv`` ``sent`` → ``acked`` times for the order
  round trip).

:class:`LatencyConfig` is built from a config mapping such as
``{"feed": {"kind": "constant", "ms": 5}, "order": {"kind": "lognormal", "median_ms": 20,
"sigma": 0.5}}`` and makes a :class:`Latencies` pair for a seed: the same seed gives the same
draws. Only :func:`latencies_from_run` does I/O (it reads the run's CSV files).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from kmm.errors import ConfigError

if TYPE_CHECKING:
    from kmm.config import BacktestConfig

__all__ = [
    "ConstantLatency",
    "EmpiricalLatency",
    "Latencies",
    "LatencyConfig",
    "LatencyModel",
    "LatencySpec",
    "LognormalLatency",
    "RunLatencies",
    "configured_latencies",
    "latencies_from_run",
]

_NS_PER_MS: Final = 1_000_000
_NS_PER_US: Final = 1_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_KINDS: Final = ("constant", "lognormal", "empirical")
_FIELDS: Final[dict[str, frozenset[str]]] = {
    "constant": frozenset({"kind", "ms"}),
    "lognormal": frozenset({"kind", "median_ms", "sigma"}),
    "empirical": frozenset({"kind", "run"}),
}


class LatencyModel(Protocol):
    """Draws one delay."""

    def draw(self) -> int:
        """One delay in nanoseconds (never negative)."""
        ...


class ConstantLatency:
    """Always ``ns``.

    Raises:
        ValueError: if ``ns`` is negative.
    """

    __slots__ = ("_ns",)

    def __init__(self, ns: int) -> None:
        if ns < 0:
            raise ValueError(f"latency must not be negative, got {ns}")
        self._ns = ns

    def draw(self) -> int:
        """See :meth:`LatencyModel.draw`."""
        return self._ns

    def __repr__(self) -> str:
        return f"constant {self._ns / _NS_PER_MS:g} ms"


class LognormalLatency:
    """``median_ns * exp(sigma * N(0, 1))``, from a seeded :class:`random.Random`.

    Raises:
        ValueError: if ``median_ns`` or ``sigma`` is negative.
    """

    __slots__ = ("_median", "_rng", "_sigma")

    def __init__(self, median_ns: int, sigma: float, seed: int = 0) -> None:
        if median_ns < 0 or sigma < 0:
            raise ValueError("median and sigma must not be negative")
        self._median = median_ns
        self._sigma = sigma
        self._rng = random.Random(seed)

    def draw(self) -> int:
        """See :meth:`LatencyModel.draw`."""
        return int(self._median * math.exp(self._sigma * self._rng.gauss(0.0, 1.0)))

    def __repr__(self) -> str:
        return f"lognormal median {self._median / _NS_PER_MS:g} ms, sigma {self._sigma:g}"


class EmpiricalLatency:
    """Draws uniformly from recorded delays (nanoseconds), from a seeded generator.

    Raises:
        ValueError: if ``samples`` is empty or holds a negative delay.
    """

    __slots__ = ("_rng", "_samples")

    def __init__(self, samples: Sequence[int], seed: int = 0) -> None:
        if not samples:
            raise ValueError("no latency samples")
        if min(samples) < 0:
            raise ValueError("latency samples must not be negative")
        self._samples = tuple(samples)
        self._rng = random.Random(seed)

    def draw(self) -> int:
        """See :meth:`LatencyModel.draw`."""
        return self._samples[self._rng.randrange(len(self._samples))]

    def __repr__(self) -> str:
        return f"empirical, {len(self._samples)} samples"


@dataclass(frozen=True, slots=True)
class Latencies:
    """The two delays of a backtest: ``feed`` (event → core) and ``order`` (each way)."""

    feed: LatencyModel
    order: LatencyModel


@dataclass(frozen=True, slots=True)
class RunLatencies:
    """The delays a live run recorded, in nanoseconds.

    Attributes:
        feed: ``tape.csv`` ``latency_ms`` (frame received → decision), one per row that has it.
        order: ``orders.csv`` ``sent`` → ``acked`` per client order id.
    """

    feed: tuple[int, ...]
    order: tuple[int, ...]


def _iso_ns(text: str) -> int:
    """ns since the epoch of the tape's ``2026-11-23T12:00:00.123456+00:00``."""
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(microseconds=1) * _NS_PER_US


def _ms_ns(text: str) -> int:
    """ns of a ``"0.256"`` millisecond string, exactly (µs precision as written)."""
    whole, _, frac = text.partition(".")
    return int(whole) * _NS_PER_MS + int((frac + "000000")[:6] or "0")


def latencies_from_run(run_dir: Path) -> RunLatencies:
    """Reads the latencies a live run recorded in ``run_dir``.

    Args:
        run_dir: A run directory holding ``tape.csv`` and ``orders.csv``.

    Returns:
        The feed and order delays found (either may be empty).

    Raises:
        ConfigError: if a file is missing or unreadable, naming it.
    """
    feed: list[int] = []
    order: list[int] = []
    sent: dict[str, int] = {}
    try:
        with (run_dir / "tape.csv").open(newline="") as file:
            for row in csv.DictReader(file):
                text = row.get("latency_ms") or ""
                if text and not text.startswith("-"):
                    feed.append(_ms_ns(text))
        with (run_dir / "orders.csv").open(newline="") as file:
            for row in csv.DictReader(file):
                coid, event = row.get("client_order_id") or "", row.get("event")
                if event == "sent" and coid:
                    sent.setdefault(coid, _iso_ns(row["ts"]))
                elif event == "acked" and coid in sent:
                    delay = _iso_ns(row["ts"]) - sent.pop(coid)
                    if delay >= 0:
                        order.append(delay)
    except OSError as exc:
        raise ConfigError([f"{exc.filename}: cannot read run file: {exc.strerror}"]) from None
    except (ValueError, KeyError) as exc:
        raise ConfigError([f"{run_dir}: malformed run file: {exc}"]) from None
    return RunLatencies(tuple(feed), tuple(order))


@dataclass(frozen=True, slots=True)
class LatencySpec:
    """One delay's configuration: ``kind`` and the fields that kind takes.

    Attributes:
        kind: ``constant`` (``ms``), ``lognormal`` (``median_ms``, ``sigma``) or
            ``empirical`` (``run``: a live run's directory).
    """

    kind: str = "constant"
    ms: float = 0.0
    median_ms: float = 0.0
    sigma: float = 0.0
    run: str = ""

    def build(self, which: str, seed: int, recorded: RunLatencies | None = None) -> LatencyModel:
        """The model this spec describes, seeded with ``seed``.

        Args:
            which: ``feed`` or ``order`` (which samples of an empirical run to use).
            seed: The generator seed.
            recorded: Already-read run latencies (else ``run`` is read).

        Raises:
            ConfigError: if an empirical run has no samples of that kind.
        """
        if self.kind == "constant":
            return ConstantLatency(round(self.ms * _NS_PER_MS))
        if self.kind == "lognormal":
            return LognormalLatency(round(self.median_ms * _NS_PER_MS), self.sigma, seed)
        samples = recorded if recorded is not None else latencies_from_run(Path(self.run))
        chosen = samples.feed if which == "feed" else samples.order
        if not chosen:
            raise ConfigError([f"latency.{which}.run: {self.run} recorded no {which} latencies"])
        return EmpiricalLatency(chosen, seed)


def _number(section: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError([f"latency.{section}.{key}: expected a number, got {value!r}"])
    if value < 0:
        raise ConfigError([f"latency.{section}.{key}: must not be negative, got {value!r}"])
    return float(value)


def _spec(section: str, raw: object) -> LatencySpec:
    if not isinstance(raw, Mapping):
        raise ConfigError([f"latency.{section}: expected a mapping, got {raw!r}"])
    kind = raw.get("kind", "constant")
    if kind not in _KINDS:
        expected = ", ".join(_KINDS)
        raise ConfigError([f"latency.{section}.kind: expected one of {expected}, got {kind!r}"])
    for key in raw:
        if key not in _FIELDS[kind]:
            raise ConfigError([f"latency.{section}.{key}: unknown field for kind {kind}"])
    if kind == "constant":
        return LatencySpec(kind, ms=_number(section, "ms", raw.get("ms", 0)))
    if kind == "lognormal":
        for key in ("median_ms", "sigma"):
            if key not in raw:
                raise ConfigError([f"latency.{section}.{key}: required for kind lognormal"])
        return LatencySpec(
            kind,
            median_ms=_number(section, "median_ms", raw["median_ms"]),
            sigma=_number(section, "sigma", raw["sigma"]),
        )
    run = raw.get("run")
    if not isinstance(run, str) or not run:
        raise ConfigError([f"latency.{section}.run: expected a run directory, got {run!r}"])
    return LatencySpec(kind, run=run)


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    """The backtest's latency configuration; a missing delay is zero."""

    feed: LatencySpec = LatencySpec()
    order: LatencySpec = LatencySpec()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> LatencyConfig:
        """Validates a mapping such as ``{"order": {"kind": "constant", "ms": 20}}``.

        Raises:
            ConfigError: naming the first bad field (``latency.order.sigma: ...``).
        """
        if not isinstance(raw, Mapping):
            raise ConfigError([f"latency: expected a mapping, got {raw!r}"])
        for key in raw:
            if key not in ("feed", "order"):
                raise ConfigError([f"latency.{key}: unknown field (expected feed, order)"])
        return cls(
            feed=_spec("feed", raw["feed"]) if "feed" in raw else LatencySpec(),
            order=_spec("order", raw["order"]) if "order" in raw else LatencySpec(),
        )

    def build(self, seed: int = 0) -> Latencies:
        """The two models, seeded from ``seed`` (feed and order get different streams).

        Raises:
            ConfigError: if an empirical run cannot be read or has no samples.
        """
        runs: dict[str, RunLatencies] = {}
        for spec in (self.feed, self.order):
            if spec.kind == "empirical" and spec.run not in runs:
                runs[spec.run] = latencies_from_run(Path(spec.run))
        return Latencies(
            feed=self.feed.build("feed", seed * 2, runs.get(self.feed.run)),
            order=self.order.build("order", seed * 2 + 1, runs.get(self.order.run)),
        )


def configured_latencies(
    settings: BacktestConfig,
    seed: int,
    *,
    latency_from: Path | None = None,
    feed_ms: float | None = None,
    order_ms: float | None = None,
) -> Latencies:
    """The feed and order latency models of a backtest: a live run's recorded delays
    (``latency_from``, else ``backtest.latency_from``), or lognormal or constant ones around
    ``feed_ms`` and ``order_ms`` (else the ``backtest`` section's).

    Raises:
        ConfigError: the run named recorded no feed or no order latency.
    """
    run = latency_from or settings.latency_from
    if run is not None:
        recorded = latencies_from_run(run)
        if not recorded.feed or not recorded.order:
            raise ConfigError([f"--latency-from: {run} recorded no feed or no order latency"])
        return Latencies(
            feed=EmpiricalLatency(recorded.feed, seed * 2),
            order=EmpiricalLatency([ns // 2 for ns in recorded.order], seed * 2 + 1),
        )
    feed = settings.feed_latency_ms if feed_ms is None else feed_ms
    order = settings.order_latency_ms if order_ms is None else order_ms
    feed_ns, order_ns = int(feed * 1_000_000), int(order * 1_000_000)
    sigma = settings.latency_sigma
    if not sigma:
        return Latencies(feed=ConstantLatency(feed_ns), order=ConstantLatency(order_ns))
    return Latencies(
        feed=LognormalLatency(feed_ns, sigma, seed * 2),
        order=LognormalLatency(order_ns, sigma, seed * 2 + 1),
    )
