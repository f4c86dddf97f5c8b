"""``kmm calibrate``: was the fair value kmm quoted around a probability? Checked against the
outcomes of the markets that settled.

Theory of operation
-------------------
A run's ``tape.csv`` holds every quote with the fair price it was computed from, and a
``close`` row with the settlement value (``$1`` for yes, ``$0`` for no, the value of a scalar)
for each market that settled while the run watched it: a live run, a backtest, or a capture's
replay (``kmm backtest --capture``). For each settled market the fair price is sampled once
every ``every`` seconds (the last quote's at each instant, so a market quoted a thousand times
a minute weighs as much as one quoted once), paired with the outcome and the time left to the
settlement.

From those pairs: a **reliability diagram** (the pairs binned by predicted probability; per
bin the mean prediction against the share that settled yes, which lie on the diagonal when the
fair price is calibrated), the **Brier score** (mean squared error of the prediction; 0 is
perfect) next to the Brier score of always predicting the base rate (the share of yes among
the pairs) and the **skill** ``1 − Brier / base``, overall and by time to settlement.

The computation (:func:`calibrate`) is pure; reading the tapes and plotting are thin shells.
"""

from __future__ import annotations

import csv
import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from kmm.errors import KmmError

__all__ = [
    "HORIZONS_S",
    "Calibration",
    "Pair",
    "calibrate",
    "format_calibration",
    "pairs_from_run",
    "run_calibrate",
]

HORIZONS_S: Final = (300, 1800, 7200)
"""Time-to-settlement buckets' upper bounds: under 5 min, 5–30 min, 30 min–2 h, over 2 h."""
_NS_PER_S: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Pair:
    """One prediction and what happened: the fair price (probability of yes), the settlement
    value (1 yes, 0 no), seconds to the settlement, the market (``RUN/TICKER``)."""

    predicted: float
    outcome: float
    to_close_s: float
    ticker: str


@dataclass(frozen=True, slots=True)
class Bin:
    """One bin of the reliability diagram."""

    low: float
    high: float
    count: int
    predicted: float | None
    realized: float | None


@dataclass(frozen=True, slots=True)
class Score:
    """Brier score of a set of pairs, the base rate's, and the skill."""

    label: str
    count: int
    brier: float | None
    base: float | None

    @property
    def skill(self) -> float | None:
        """``1 − brier / base`` (None when undefined)."""
        if self.brier is None or not self.base:
            return None
        return 1 - self.brier / self.base


@dataclass(frozen=True, slots=True)
class Calibration:
    """The reliability diagram and the scores."""

    markets: int
    bins: tuple[Bin, ...]
    overall: Score
    by_horizon: tuple[Score, ...]


def _score(label: str, pairs: Sequence[Pair]) -> Score:
    if not pairs:
        return Score(label, 0, None, None)
    rate = sum(p.outcome for p in pairs) / len(pairs)
    brier = sum((p.predicted - p.outcome) ** 2 for p in pairs) / len(pairs)
    base = sum((rate - p.outcome) ** 2 for p in pairs) / len(pairs)
    return Score(label, len(pairs), brier, base)


def _horizon_label(i: int) -> str:
    if i == 0:
        return f"< {_duration(HORIZONS_S[0])}"
    if i == len(HORIZONS_S):
        return f"> {_duration(HORIZONS_S[-1])}"
    return f"{_duration(HORIZONS_S[i - 1])}-{_duration(HORIZONS_S[i])}"


def _duration(seconds: int) -> str:
    return (
        f"{seconds // 3600} h" if seconds >= 3600 and not seconds % 3600 else f"{seconds // 60} min"
    )


def calibrate(pairs: Sequence[Pair], bins: int = 10) -> Calibration:
    """The reliability diagram (``bins`` equal bins of predicted probability) and the Brier
    scores, overall and by time to settlement."""
    table = []
    for i in range(bins):
        low, high = i / bins, (i + 1) / bins
        inside = [
            p for p in pairs if low <= p.predicted < high or (i == bins - 1 and p.predicted == 1)
        ]
        count = len(inside)
        table.append(
            Bin(
                low,
                high,
                count,
                sum(p.predicted for p in inside) / count if count else None,
                sum(p.outcome for p in inside) / count if count else None,
            )
        )
    buckets: list[list[Pair]] = [[] for _ in range(len(HORIZONS_S) + 1)]
    for pair in pairs:
        buckets[bisect_right(HORIZONS_S, pair.to_close_s)].append(pair)
    return Calibration(
        markets=len({p.ticker for p in pairs}),
        bins=tuple(table),
        overall=_score("all", pairs),
        by_horizon=tuple(_score(_horizon_label(i), b) for i, b in enumerate(buckets)),
    )


# --------------------------------------------------------------------------- reading tapes


def _ns(text: str) -> int:
    stamp = datetime.fromisoformat(text)
    return int(stamp.timestamp()) * _NS_PER_S + stamp.microsecond * 1000


def pairs_from_run(run_dir: Path, every_s: float = 60.0) -> list[Pair]:
    """The (fair price, outcome) pairs of every market that settled in a run.

    Raises:
        KmmError: the run has no readable ``tape.csv``.
    """
    path = run_dir / "tape.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise KmmError(f"calibrate: {run_dir} has no tape.csv (not a run directory)") from None
    if rows and not {"ts", "ticker", "event", "mid", "fair"} <= set(rows[0]):
        raise KmmError(f"calibrate: {path} lacks the fair column (a run from before it)")
    quotes: dict[str, list[tuple[int, float]]] = {}
    closes: dict[str, tuple[int, float]] = {}
    for row in rows:
        ticker = row["ticker"]
        if row["event"] == "close" and row["mid"]:
            closes[ticker] = (_ns(row["ts"]), _outcome(row["mid"]))
        elif row["fair"] and ticker not in closes:
            quotes.setdefault(ticker, []).append((_ns(row["ts"]), float(row["fair"])))
    return [
        pair
        for ticker, (close_ns, outcome) in sorted(closes.items())
        for pair in _sampled(
            f"{run_dir.name}/{ticker}", quotes.get(ticker, []), close_ns, outcome, every_s
        )
    ]


def _outcome(text: str) -> float:
    try:
        return float(Decimal(text))  # the settlement value, $0 to $1: exact in the tape
    except InvalidOperation:
        raise KmmError(f"calibrate: a close row's value is not a price: {text!r}") from None


def _sampled(
    ticker: str, quotes: Sequence[tuple[int, float]], close_ns: int, outcome: float, every_s: float
) -> Iterable[Pair]:
    if not quotes:
        return
    step = int(every_s * _NS_PER_S)
    times = [t for t, _ in quotes]
    at = quotes[0][0]
    while at < close_ns:
        i = bisect_right(times, at) - 1
        yield Pair(quotes[i][1], outcome, (close_ns - at) / _NS_PER_S, ticker)
        at += step


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_calibration(result: Calibration, runs: int) -> str:
    """The diagram as a table and the scores."""
    lines = [
        f"kmm calibrate: {result.overall.count} samples of {result.markets} settled markets "
        f"in {runs} runs",
        "",
        "predicted     samples  mean predicted  settled yes",
    ]
    for b in result.bins:
        lines.append(f"{b.low:.1f}-{b.high:.1f}   {b.count:>9}  {_fmt(b.predicted):>14}  "
                     f"{_fmt(b.realized):>11}")  # fmt: skip
    lines += ["", "to settlement   samples   Brier    base rate's  skill"]
    for score in (result.overall, *result.by_horizon):
        lines.append(f"{score.label:<14} {score.count:>8}  {_fmt(score.brier):>7}  "
                     f"{_fmt(score.base):>11}  {_fmt(score.skill, 3):>6}")  # fmt: skip
    return "\n".join(lines)


def _as_json(result: Calibration) -> dict[str, Any]:
    return {
        "markets": result.markets,
        "bins": [vars_of(b) for b in result.bins],
        "overall": {**vars_of(result.overall), "skill": result.overall.skill},
        "by_horizon": [{**vars_of(s), "skill": s.skill} for s in result.by_horizon],
    }


def vars_of(item: Any) -> dict[str, Any]:
    """A slotted dataclass's fields as a dict."""
    return {name: getattr(item, name) for name in item.__slots__}


def plot_reliability(result: Calibration, path: Path) -> None:
    """The reliability diagram as a PNG: the bins' mean prediction against the share settled
    yes, sized by their samples, with the diagonal of perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5.5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
    points = [
        (b.predicted, b.realized, b.count)
        for b in result.bins
        if b.predicted is not None and b.realized is not None
    ]
    largest = max((n for _, _, n in points), default=1)
    xs, ys = [x for x, _, _ in points], [y for _, y, _ in points]
    sizes = [30 + 300 * n / largest for _, _, n in points]
    axes.scatter(xs, ys, s=sizes, label="bins")
    axes.plot(xs, ys, linewidth=1)
    brier = _fmt(result.overall.brier)
    axes.set_title(f"fair value against outcome (Brier {brier}, {result.markets} markets)")
    axes.set_xlabel("fair value (predicted probability of yes)")
    axes.set_ylabel("share settled yes")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def run_calibrate(
    run_dirs: Sequence[Path], out_dir: Path, *, bins: int, every_s: float, out: Any
) -> int:
    """Reads the runs, prints the table, writes ``calibration.json`` and
    ``calibration.png`` into ``out_dir``; returns the exit status.

    Raises:
        KmmError: no run holds a settled market (exit status 1).
    """
    pairs = [pair for run_dir in run_dirs for pair in pairs_from_run(run_dir, every_s)]
    if not pairs:
        raise KmmError(
            "calibrate: no market settled in "
            f"{', '.join(str(r) for r in run_dirs) or 'the runs'} (try a backtest of the "
            "settlement scenario)"
        )
    result = calibrate(pairs, bins)
    print(format_calibration(result, len(run_dirs)), file=out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "calibration.json").write_text(json.dumps(_as_json(result), indent=2) + "\n")
    plot_reliability(result, out_dir / "calibration.png")
    print(f"kmm calibrate: {out_dir / 'calibration.json'}, {out_dir / 'calibration.png'}", file=out)
    return 0
