"""``kmm sweep``: walk-forward parameter search, each backtest a Dask task, Optuna deciding.

Theory of operation
-------------------
The data is a sequence of **sessions** in time order: the capture files of a directory (one
session each, by their run's start), or generated seeds (one session per seed, every scenario
asked for in it). The sessions are cut into ``folds + 1`` consecutive blocks. Fold *k* searches
the space on block *k* (in sample) and evaluates the best configuration it found on block
*k + 1* (out of sample); then the window rolls forward. A configuration's **objective** over a
block is computed from one backtest per (session, scenario): the net P&L summed (``net``), that
sum over the sum of the runs' maximum drawdowns (``net_per_drawdown``), or the mean run's net
over their standard deviation (``mean_over_sd``).

The search is Optuna's, one study per fold in ``OUT/study.db`` (SQLite), so an interrupted
sweep resumes where it stopped: finished trials are kept, trials cut short are marked failed
and asked again, and a fold whose out-of-sample result is stored is not run again. The trials
are asked in batches as wide as the cluster (ask-and-tell), every backtest of a trial is one
Dask task, and the trial is told its objective once its last backtest is back. The cluster is a
``distributed.LocalCluster`` with one single-threaded worker process per core (backtests are
CPU-bound Python), or an existing one by address (``--scheduler tcp://HOST:8786``).

What it writes into ``OUT``: ``trials.csv`` (every trial: fold, number, state, objective, the
parameters), ``folds.csv`` (each fold's best parameters, in-sample and out-of-sample objective),
``fold-K.yaml`` (each fold's best as a config file), ``best.yaml`` (the fold best with the highest
out-of-sample objective, a full config file ``kmm --config OUT/best.yaml config`` accepts),
``importance.csv`` (each fold's parameter importances) and ``folds.png`` (in-sample against
out-of-sample objective per fold).

Two figures keep the result honest. ``best.yaml``'s fold was chosen by its test block, so its
out-of-sample objective is the best of several and flatters it; the estimate of what the search
earns on data it has not seen is the **walk-forward mean**, the mean out-of-sample objective
over the folds, and its **efficiency** is that mean over the in-sample mean (about 1: the search
found something that lasts; near 0 or below: it fitted noise). A parameter's **importance** in a
fold is Optuna's PED-ANOVA: how differently the fold's best quarter of trials set it from all
its trials, the fold's importances summing to 1; a parameter near 0 can be fixed, and a space
is searched faster without it.
"""

from __future__ import annotations

import logging
import math
import signal
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TextIO

import optuna
import yaml
from distributed import Client, Future, LocalCluster, as_completed

from kmm.backtest.driver import BacktestOptions
from kmm.backtest.latency import configured_latencies
from kmm.backtest.replay_venue import replay_setup
from kmm.backtest.scoreboard import RunScore, score_options
from kmm.config import KmmConfig, with_fields
from kmm.errors import ConfigError, KmmError
from kmm.research import OBJECTIVES, SAMPLERS
from kmm.research.space import SearchSpace, apply_params

__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "Job",
    "Session",
    "SweepOptions",
    "SweepRun",
    "WalkForwardSummary",
    "capture_sessions",
    "format_folds",
    "objective",
    "param_importances",
    "run_job",
    "run_sweep",
    "scenario_sessions",
    "walk_forward",
    "walk_forward_summary",
]

STUDY_FILE: Final = "study.db"
SCHEDULER_WAIT_S: float = 60.0
"""How long a sweep on an existing cluster waits for its first worker."""
_MIN_DRAWDOWN: Final = Decimal("0.01")
"""The drawdown ``net_per_drawdown`` divides by at least ($0.01): a run that never fell."""
IMPORTANCE_MIN_TRIALS: Final = 12
"""Complete trials a fold needs before its parameter importances mean anything."""
_IMPORTANCE_QUANTILE: Final = 0.25
"""PED-ANOVA's top trials: the best quarter (its default, a tenth, is one trial of twelve)."""


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True, slots=True)
class Job:
    """One backtest: a generated scenario and seed, or a capture's replay."""

    label: str
    scenario: str = "calm"
    seed: int = 1
    markets: int = 8
    duration_s: float | None = None
    capture: Path | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """One unit of time of the walk-forward (a seed, a capture) and its backtests."""

    name: str
    jobs: tuple[Job, ...]


def scenario_sessions(
    scenarios: Sequence[str], seeds: Sequence[int], markets: int, duration_s: float
) -> list[Session]:
    """One session per seed, in order, each with a backtest per scenario."""
    return [
        Session(
            f"seed {seed}",
            tuple(Job(f"{s}/{seed}", s, seed, markets, duration_s) for s in scenarios),
        )
        for seed in seeds
    ]


def capture_sessions(directory: Path, duration_s: float | None = None) -> list[Session]:
    """One session per ``capture.jsonl.gz`` under ``directory``, by its run's start time.

    Raises:
        ConfigError: the directory holds no capture.
    """
    captures = sorted(directory.glob("**/capture.jsonl.gz"), key=lambda p: p.parent.name)
    if not captures:
        raise ConfigError([f"--captures: no capture.jsonl.gz under {directory}"])
    return [
        Session(p.parent.name, (Job(p.parent.name, duration_s=duration_s, capture=p),))
        for p in captures
    ]


def walk_forward(
    sessions: Sequence[Session], folds: int
) -> list[tuple[list[Session], list[Session]]]:
    """The folds' (in-sample, out-of-sample) sessions: ``folds + 1`` consecutive blocks, fold
    *k* training on block *k* and testing on block *k + 1*.

    Raises:
        ConfigError: fewer sessions than blocks.
    """
    blocks = folds + 1
    if len(sessions) < blocks:
        raise ConfigError(
            [
                f"--folds {folds} needs at least {blocks} sessions (seeds or captures), "
                f"got {len(sessions)}"
            ]
        )
    size, extra = divmod(len(sessions), blocks)
    cut, start = [], 0
    for i in range(blocks):
        end = start + size + (1 if i < extra else 0)
        cut.append(list(sessions[start:end]))
        start = end
    return [(cut[k], cut[k + 1]) for k in range(folds)]


# --------------------------------------------------------------------------- one backtest


def run_job(config: KmmConfig, job: Job) -> RunScore:
    """One backtest, scored as ``kmm report`` reads it (the Dask task)."""
    latency = configured_latencies(config.backtest, job.seed)
    if job.capture is None:
        options = BacktestOptions(
            scenario=job.scenario,
            seed=job.seed,
            markets=job.markets,
            duration_s=job.duration_s,
            tier=config.sim.tier,
            latency=latency,
        )
        return score_options(config, options, job.label)
    venue, options, source = replay_setup(
        job.capture, config.backtest, job.seed, latency, None, job.duration_s, config.sim.tier
    )
    return score_options(config, options, job.label, venue=venue, source=source)


def objective(name: str, scores: Sequence[RunScore]) -> float:
    """A block's objective from its runs' scores (see the module docstring)."""
    nets = [s.net for s in scores]
    if name == "net":
        return float(sum(nets, Decimal(0)))
    if name == "net_per_drawdown":
        drawdown = max(sum((s.drawdown for s in scores), Decimal(0)), _MIN_DRAWDOWN)
        return float(sum(nets, Decimal(0)) / drawdown)
    if len(nets) < 2:
        return float(nets[0]) if nets else 0.0
    spread = statistics.stdev(float(n) for n in nets)
    mean = statistics.fmean(float(n) for n in nets)
    return mean / spread if spread > 0 else math.copysign(1e9, mean) if mean else 0.0


# --------------------------------------------------------------------------- the sweep


@dataclass(frozen=True, slots=True)
class SweepOptions:
    """What a sweep does (the command line's flags).

    Attributes:
        space: The search space.
        sessions: The sessions, in time order.
        folds: Walk-forward folds.
        trials: Trials per fold.
        out: The output directory (the study lives there too).
        objective: One of :data:`OBJECTIVES`.
        sampler: One of :data:`SAMPLERS`.
        workers: Local workers (None: one per core).
        scheduler: An existing cluster's address (then ``workers`` is unused).
        seed: The sampler's seed.
        base_file: The config file the sweep started from (``best.yaml`` is it with the
            parameters set), or None.
    """

    space: SearchSpace
    sessions: tuple[Session, ...]
    folds: int
    trials: int
    out: Path
    objective: str = "net"
    sampler: str = "tpe"
    workers: int | None = None
    scheduler: str | None = None
    seed: int = 1
    base_file: Path | None = None


@dataclass(slots=True)
class _Progress:
    """Trials done and the time they took, for the progress line's rate and ETA."""

    total: int
    out: TextIO
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    ran: int = 0
    """Trials run in this process (not resumed), for the rate."""

    def line(self, fold: int, folds: int, best: float | None) -> None:
        elapsed = time.monotonic() - self.started
        rate = self.ran / elapsed * 60 if elapsed > 0 and self.ran else 0.0
        left = self.total - self.done
        eta = f"{left / rate:.1f} min" if rate else "-"
        shown = "-" if best is None else f"{best:.4f}"
        print(
            f"sweep: fold {fold}/{folds} | trials {self.done}/{self.total} | best {shown} | "
            f"{rate:.1f} trials/min | ETA {eta}",
            file=self.out,
            flush=True,
        )


def _sampler(options: SweepOptions, fold: int) -> optuna.samplers.BaseSampler:
    seed = options.seed * 1000 + fold
    if options.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if options.sampler == "grid":
        return optuna.samplers.GridSampler(options.space.grid(), seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _study(options: SweepOptions, storage: str, fold: int) -> optuna.Study:
    study = optuna.create_study(
        study_name=f"fold-{fold}",
        storage=storage,
        direction="maximize",
        sampler=_sampler(options, fold),
        load_if_exists=True,
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # cut short: asked again
    return study


def _finished(study: optuna.Study) -> int:
    """Trials that ran to their end: complete, or failed with an error of their own (a trial
    cut short by an interrupt was failed without one, and is asked again)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state is optuna.trial.TrialState.COMPLETE
        or (t.state is optuna.trial.TrialState.FAIL and "error" in t.user_attrs)
    )


class _Runner:
    """Runs trials of one study on the cluster, as many at a time as it has worker threads."""

    def __init__(
        self,
        client: Client,
        base: KmmConfig,
        options: SweepOptions,
        progress: Callable[[float | None], None],
    ) -> None:
        self.client = client
        self.base = base
        self.options = options
        self.progress = progress

    def search(self, study: optuna.Study, sessions: Sequence[Session], trials: int) -> None:
        """Asks and tells until ``trials`` have finished in ``study``."""
        jobs = [job for session in sessions for job in session.jobs]
        pending: dict[int, tuple[optuna.Trial, list[Future[RunScore]], int]] = {}
        done = as_completed()  # type: ignore[no-untyped-call]
        asked = _finished(study)
        while asked < trials or pending:
            width = _slots(self.client)  # read again: workers can join a running sweep
            while asked < trials and len(pending) < width:
                trial = study.ask()
                asked += 1
                futures = self._submit(trial, jobs)
                if futures is None:
                    self.progress(_best(study))
                    continue
                pending[trial.number] = (trial, futures, len(futures))
                for future in futures:
                    done.add(future)  # type: ignore[no-untyped-call]
            if not pending:
                continue
            future = next(done)
            number = _owner(pending, future)
            trial, futures, left = pending[number]
            if left > 1:
                pending[number] = (trial, futures, left - 1)
                continue
            del pending[number]
            self._tell(study, trial, futures)
            self.progress(_best(study))

    def _submit(self, trial: optuna.Trial, jobs: Sequence[Job]) -> list[Future[RunScore]] | None:
        params = self.options.space.suggest(trial)
        try:
            config = apply_params(self.base, params)
        except ConfigError as exc:
            trial.set_user_attr("error", exc.problems[0])
            trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return None
        return [self.client.submit(run_job, config, job, pure=False) for job in jobs]

    def _tell(
        self, study: optuna.Study, trial: optuna.Trial, futures: Sequence[Future[RunScore]]
    ) -> None:
        try:
            scores = [f.result() for f in futures]
        except Exception as exc:  # a backtest that raised fails its trial, not the sweep
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        trial.set_user_attr("fills", sum(s.fills for s in scores))
        trial.set_user_attr("net", str(sum((s.net for s in scores), Decimal(0))))
        study.tell(trial, objective(self.options.objective, scores))

    def evaluate(self, params: Mapping[str, Any], sessions: Sequence[Session]) -> float:
        """The objective of these parameters on these sessions (out of sample)."""
        config = apply_params(self.base, params)
        jobs = [job for session in sessions for job in session.jobs]
        futures = [self.client.submit(run_job, config, job, pure=False) for job in jobs]
        return objective(self.options.objective, [f.result() for f in futures])


def _slots(client: Client) -> int:
    """How many tasks the cluster runs at once: its workers' threads (at least 1)."""
    threads = client.nthreads()  # type: ignore[no-untyped-call]
    return max(1, int(sum(threads.values())))


def _owner(
    pending: Mapping[int, tuple[Any, list[Future[RunScore]], int]], future: Future[RunScore]
) -> int:
    for number, (_, futures, _) in pending.items():
        if any(f is future or f.key == future.key for f in futures):
            return number
    raise KmmError("sweep: a backtest came back that no trial asked for")


def _best(study: optuna.Study) -> float | None:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return max((t.value for t in complete if t.value is not None), default=None)


@dataclass(frozen=True, slots=True)
class FoldResult:
    """A fold's best parameters and their in-sample and out-of-sample objectives."""

    fold: int
    params: dict[str, Any]
    in_sample: float
    out_of_sample: float
    train: str
    test: str
    importance: dict[str, float] = field(default_factory=dict)
    """The parameters' importances in this fold's search (empty: too few trials)."""


@dataclass(frozen=True, slots=True)
class SweepRun:
    """What a sweep did: each fold's result, the trials run by this process and the seconds
    they took (from the first trial asked to the last told, the cluster's start left out)."""

    folds: tuple[FoldResult, ...]
    trials_run: int
    search_s: float

    @property
    def trials_per_minute(self) -> float:
        """The search's throughput."""
        return self.trials_run / self.search_s * 60 if self.search_s > 0 else 0.0


def run_sweep(base: KmmConfig, options: SweepOptions, out: TextIO) -> SweepRun:
    """Runs (or resumes) a walk-forward sweep and writes its results into ``options.out``.

    Raises:
        ConfigError: too few sessions for the folds, an unreachable scheduler, or no trial of
            a fold that finished.
    """
    options.out.mkdir(parents=True, exist_ok=True)
    windows = walk_forward(options.sessions, options.folds)
    storage = f"sqlite:///{options.out / STUDY_FILE}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: list[FoldResult] = []
    with _cluster(options) as client:
        print(_banner(options, client), file=out, flush=True)
        progress = _Progress(options.trials * options.folds, out)
        for fold, (train, test) in enumerate(windows, 1):
            study = _study(options, storage, fold)
            progress.done = (fold - 1) * options.trials + min(_finished(study), options.trials)
            before = progress.done

            def tick(best: float | None, fold: int = fold, study: optuna.Study = study) -> None:
                progress.done = (fold - 1) * options.trials + min(_finished(study), options.trials)
                progress.ran += 1
                progress.line(fold, options.folds, best)

            runner = _Runner(client, base, options, tick)
            runner.search(study, train, options.trials)
            if progress.done == before and before:
                progress.line(fold, options.folds, _best(study))
            search_s = time.monotonic() - progress.started
            results.append(_fold_result(study, runner, fold, train, test))
    _write_results(base, options, results)
    return SweepRun(tuple(results), progress.ran, search_s)


def _fold_result(
    study: optuna.Study,
    runner: _Runner,
    fold: int,
    train: Sequence[Session],
    test: Sequence[Session],
) -> FoldResult:
    try:
        best = study.best_trial
    except ValueError:
        raise ConfigError([f"sweep: fold {fold}: no trial finished (see trials.csv)"]) from None
    stored = study.user_attrs.get("out_of_sample")
    if stored is None or study.user_attrs.get("best_number") != best.number:
        stored = runner.evaluate(best.params, test)
        study.set_user_attr("out_of_sample", stored)
        study.set_user_attr("best_number", best.number)
    return FoldResult(
        fold, dict(best.params), float(best.value or 0.0), float(stored),
        _span(train), _span(test), param_importances(study),
    )  # fmt: skip


def param_importances(study: optuna.Study) -> dict[str, float]:
    """The study's parameter importances by PED-ANOVA, largest first, summing to 1.

    Empty when they would mean nothing: fewer than :data:`IMPORTANCE_MIN_TRIALS` complete
    trials, or trials whose best quarter cannot be told from the rest (all objectives equal).
    """
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < IMPORTANCE_MIN_TRIALS or len({t.value for t in complete}) < 2:
        return {}
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=_IMPORTANCE_QUANTILE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "importances will be equal": there are none to show
        try:
            found = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (UserWarning, ValueError, RuntimeError):
            return {}
    return {name: float(value) for name, value in found.items()}


def _span(sessions: Sequence[Session]) -> str:
    return sessions[0].name if len(sessions) == 1 else f"{sessions[0].name} .. {sessions[-1].name}"


class _cluster:
    """The Dask client: of a new LocalCluster, or of an existing scheduler."""

    def __init__(self, options: SweepOptions) -> None:
        self.options = options
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None

    def __enter__(self) -> Client:
        options = self.options
        try:
            if options.scheduler is not None:
                self.client = Client(options.scheduler, timeout="10s")  # type: ignore[no-untyped-call]
                self._wait_for_a_worker(self.client, options.scheduler)
            else:
                # The workers ignore Ctrl-C (a process starts with the SIGINT disposition it
                # inherits): the sweep itself stops them, so an interrupt prints one line
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    self.cluster = LocalCluster(  # type: ignore[no-untyped-call]
                        n_workers=options.workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.ERROR,
                    )
                finally:
                    signal.signal(signal.SIGINT, previous)
                self.client = Client(self.cluster)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise ConfigError([f"--scheduler: cannot reach {options.scheduler}: {exc}"]) from None
        return self.client

    def _wait_for_a_worker(self, client: Client, address: str) -> None:
        """An existing cluster's workers may still be starting: a sweep waits for the first
        rather than asking trials that nothing would run."""
        try:
            client.wait_for_workers(1, timeout=SCHEDULER_WAIT_S)
        except TimeoutError:
            client.close()  # type: ignore[no-untyped-call]
            self.client = None
            raise ConfigError(
                [
                    f"--scheduler: {address} has no worker after {SCHEDULER_WAIT_S:g} s "
                    f"(start one: dask worker {address})"
                ]
            ) from None

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()  # type: ignore[no-untyped-call]
        if self.cluster is not None:
            self.cluster.close()


def _banner(options: SweepOptions, client: Client) -> str:
    workers = len(client.nthreads())  # type: ignore[no-untyped-call]
    where = options.scheduler or "a local cluster"
    return (
        f"kmm sweep: {_count(len(options.space.dimensions), 'parameter')}, "
        f"{_count(len(options.sessions), 'session')}, {_count(options.folds, 'fold')} x "
        f"{_count(options.trials, 'trial')}, {options.sampler}, objective {options.objective}; "
        f"{_count(workers, 'worker')} on {where}; study in {options.out / STUDY_FILE}"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --------------------------------------------------------------------------- results


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _trial_rows(storage: str, folds: int) -> Iterator[dict[str, Any]]:
    for fold in range(1, folds + 1):
        study = optuna.load_study(study_name=f"fold-{fold}", storage=storage)
        for trial in study.get_trials(deepcopy=False):
            yield {
                "fold": fold,
                "trial": trial.number,
                "state": trial.state.name.lower(),
                "objective": trial.value,
                "net": trial.user_attrs.get("net"),
                "fills": trial.user_attrs.get("fills"),
                "error": trial.user_attrs.get("error", ""),
                **{name: _plain(v) for name, v in trial.params.items()},
            }


def _write_results(base: KmmConfig, options: SweepOptions, results: Sequence[FoldResult]) -> None:
    import pandas as pd  # type: ignore[import-untyped]

    out = options.out
    storage = f"sqlite:///{out / STUDY_FILE}"
    pd.DataFrame(list(_trial_rows(storage, options.folds))).to_csv(out / "trials.csv", index=False)
    rows = [
        {"fold": r.fold, "train": r.train, "test": r.test, "in_sample": r.in_sample,
         "out_of_sample": r.out_of_sample, **{k: _plain(v) for k, v in r.params.items()}}
        for r in results
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "folds.csv", index=False)
    importance = [
        {"fold": r.fold, "parameter": name, "importance": value}
        for r in results
        for name, value in r.importance.items()
    ]
    pd.DataFrame(importance, columns=["fold", "parameter", "importance"]).to_csv(
        out / "importance.csv", index=False
    )
    for result in results:
        _write_config(base, options, result.params, out / f"fold-{result.fold}.yaml")
    best = max(results, key=lambda r: r.out_of_sample)
    _write_config(base, options, best.params, out / "best.yaml")
    _plot(results, out / "folds.png")


def _write_config(
    base: KmmConfig, options: SweepOptions, params: Mapping[str, Any], path: Path
) -> None:
    """The base config file with the parameters set (exact decimals as strings)."""
    config = with_fields(base, {k: _exact(options, k, v) for k, v in params.items()})
    data: dict[str, Any] = {}
    if options.base_file is not None:
        data = yaml.safe_load(options.base_file.read_text(encoding="utf-8")) or {}
    for name in params:
        section, _, key = name.partition(".")
        value = getattr(getattr(config, section), key)
        data.setdefault(section, {})[key] = _plain(value)
    header = "# kmm sweep: the best parameters found, on top of the base config\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _exact(options: SweepOptions, name: str, value: Any) -> Any:
    dimension = next(d for d in options.space.dimensions if d.name == name)
    if dimension.kind == "decimal" and dimension.step is not None:
        return Decimal(repr(value)).quantize(dimension.step)
    return value


def _plot(results: Sequence[FoldResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = [r.fold for r in results]
    figure, axes = plt.subplots(figsize=(7, 4))
    width = 0.38
    axes.bar([f - width / 2 for f in folds], [r.in_sample for r in results], width,
             label="in sample (train)")  # fmt: skip
    axes.bar([f + width / 2 for f in folds], [r.out_of_sample for r in results], width,
             label="out of sample (test)")  # fmt: skip
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xticks(folds)
    axes.set_xlabel("fold")
    axes.set_ylabel("objective")
    axes.set_title("walk-forward: each fold's best, in and out of sample")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


@dataclass(frozen=True, slots=True)
class WalkForwardSummary:
    """What the folds say together (see the module docstring).

    Attributes:
        folds: How many folds.
        in_sample: The mean in-sample objective of the folds' bests.
        out_of_sample: The walk-forward mean: their mean out-of-sample objective.
        efficiency: ``out_of_sample / in_sample``, or None when the in-sample mean is not
            above 0 (a ratio of losses says nothing).
    """

    folds: int
    in_sample: float
    out_of_sample: float
    efficiency: float | None


def walk_forward_summary(results: Sequence[FoldResult]) -> WalkForwardSummary:
    """The walk-forward mean and efficiency of the folds' results."""
    in_sample = statistics.fmean(r.in_sample for r in results)
    out_of_sample = statistics.fmean(r.out_of_sample for r in results)
    efficiency = out_of_sample / in_sample if in_sample > 0 else None
    return WalkForwardSummary(len(results), in_sample, out_of_sample, efficiency)


def format_folds(results: Sequence[FoldResult], out: Path) -> str:
    """The walk-forward's table: per fold its windows, best parameters and objectives, then
    the walk-forward mean, the parameters' importances and where ``best.yaml`` is."""
    lines = ["fold  train -> test                          in sample  out of sample  parameters"]
    for r in results:
        params = ", ".join(f"{k}={_shown(v)}" for k, v in r.params.items())
        window = f"{r.train} -> {r.test}"
        lines.append(
            f"{r.fold:>4}  {window:<37} {r.in_sample:>9.4f}  {r.out_of_sample:>13.4f}  {params}"
        )
    summary = walk_forward_summary(results)
    efficiency = (
        "n/a: in sample not above 0" if summary.efficiency is None else f"{summary.efficiency:.2f}"
    )
    lines.append(
        f"walk-forward mean: out of sample {summary.out_of_sample:.4f}, in sample "
        f"{summary.in_sample:.4f} (efficiency {efficiency})"
    )
    lines.extend(_importance_lines(results))
    best = max(results, key=lambda r: r.out_of_sample)
    lines.append(
        f"best (fold {best.fold}, out of sample {best.out_of_sample:.4f}, chosen on its test "
        f"block): {out / 'best.yaml'}"
    )
    return "\n".join(lines)


def _importance_lines(results: Sequence[FoldResult]) -> list[str]:
    if not any(r.importance for r in results):
        return [f"importance: none (a fold needs {IMPORTANCE_MIN_TRIALS} complete trials)"]
    lines = []
    for r in results:
        shown = ", ".join(f"{name} {value:.2f}" for name, value in r.importance.items())
        lines.append(f"importance, fold {r.fold}: {shown or '-'}")
    return lines


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
