"""README.md as a test: every command in its code blocks is run, and each is handled explicitly.

The README's fenced blocks are read in order. A ``sh`` block is a list of commands (one a
line, ``# ...`` comments dropped); a ``python`` or ``sql`` block is one program; a block without
a language is output, a diagram or a listing. :data:`COMMANDS` maps every command and program
to the function that runs it and :data:`NOT_COMMANDS` names every other block with the reason
it is not run, so a command added to the README without a handler fails
``test_every_readme_block_is_handled`` until it gets one.

Commands run as a user types them: through ``bash`` in a scratch directory (``runs/`` and
``state/`` are written there, ``probe.py`` is linked in), with the test's Python first on
``PATH`` and no ``KMM__*`` variables of the developer's. Long-running commands get a short
``--duration``. Commands for Kalshi's demo or prod run without network: pointed at a local
exchange started by the README's own ``kmm sim`` command (``KMM__VENUE__REST_URL`` and its key),
or, for prod, at a loopback port nothing listens on, where they must fail with the documented
one-line error and exit status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLE_RUN = "runs/20261123T120000Z"
"""The run directory the README's examples name; the test copies a real run there."""
TIMEOUT_S = 60


# --------------------------------------------------------------------------- reading the README


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: its language (``""`` when none), its lines, where it starts."""

    lang: str
    lines: tuple[str, ...]
    line_no: int

    @property
    def key(self) -> str:
        """How the handler tables name a program or a non-command block: its first line."""
        return f"{self.lang}: {self.lines[0]}" if self.lang else self.lines[0]


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, in order."""
    blocks: list[Block] = []
    lang: str | None = None
    body: list[str] = []
    start = 0
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        fence = re.fullmatch(r"```(\w*)\s*", line)
        if fence and lang is None:
            lang, body, start = fence.group(1), [], number
        elif fence:
            assert lang is not None
            blocks.append(Block(lang, tuple(body), start))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"README.md: the block at line {start} is not closed"
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The commands of a ``sh`` block: one a line, comments (whole-line or trailing) dropped."""
    commands = []
    for line in block.lines:
        command = re.sub(r"\s+#\s.*$", "", line).strip()
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


def block_after(key: str) -> Block:
    """The block that follows the one holding ``key`` (a command, or a block's key)."""
    blocks = readme_blocks()
    for i, block in enumerate(blocks):
        if key == block.key or (block.lang == "sh" and key in shell_commands(block)):
            return blocks[i + 1]
    raise AssertionError(f"{key!r} is not in README.md")


def block_of(command: str) -> Block:
    """The ``sh`` block holding ``command``."""
    return next(b for b in readme_blocks() if b.lang == "sh" and command in shell_commands(b))


def readme_keys() -> list[str]:
    """What the README shows that must be handled: commands, programs and other blocks."""
    keys: list[str] = []
    for block in readme_blocks():
        keys += shell_commands(block) if block.lang == "sh" else [block.key]
    return keys


_WORD = re.compile(r"(?<![0-9A-Za-z])[a-z]{2,}(?![0-9A-Za-z])")


_VARIES = {"bid": "side", "ask": "side"}
"""Words that differ between two runs' output: a fill's side is whichever side traded first."""


def words(line: str) -> list[str]:
    """The lower-case words of a line: what stays the same between two runs' output."""
    return [_VARIES.get(word, word) for word in _WORD.findall(line)]


def assert_shows(sample: list[str], output: str) -> None:
    """Each sample line's words appear, in order, in one line of ``output`` (in order)."""
    lines = iter(output.splitlines())
    for expected in sample:
        want = words(expected)
        for line in lines:
            got = iter(words(line))
            if want and all(word in got for word in want):
                break
        else:
            raise AssertionError(f"no output line reads like {expected!r} in:\n{output}")


# --------------------------------------------------------------------------- running commands


@dataclass(frozen=True, slots=True)
class Ran:
    """A finished command: exit status, stdout, stderr."""

    status: int
    out: str
    err: str

    def one_line_error(self) -> str:
        """The single line on stderr (it must be exactly one)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


@dataclass(frozen=True, slots=True)
class Sim:
    """The local exchange the README's ``kmm sim`` command started."""

    process: subprocess.Popen[str]
    banner: list[str]
    rest_url: str
    key_id: str
    key_file: Path

    def env(self) -> dict[str, str]:
        """Overrides that point a demo or prod command at this exchange, with its key."""
        return {
            "KMM__VENUE__REST_URL": self.rest_url,
            "KMM__AUTH__KEY_ID": self.key_id,
            "KMM__AUTH__PRIVATE_KEY_PATH": str(self.key_file),
        }


class Docs:
    """A scratch directory to run the README's commands in, and what they share.

    Args:
        home: The directory; commands run in it and write ``runs/`` and ``state/`` there.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        (home / "probe.py").symlink_to(ROOT / "probe.py")
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        self.base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KMM")},
            "PATH": path,
            "HOME": str(home),
        }
        self._made_run: tuple[Ran, Path] | None = None
        self._sim: Sim | None = None

    def sh(self, command: str, timeout_s: float = TIMEOUT_S, **env: str) -> Ran:
        """Runs ``command`` through bash in the scratch directory, as a user would."""
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.home,
            env={**self.base_env, **env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def made_run(self) -> tuple[Ran, Path]:
        """What ``make run`` runs (``python -m kmm``), for 5 s; its output and run directory."""
        if self._made_run is None:
            ran = self.sh("python -m kmm --duration 5s")
            assert ran.status == 0, ran.err
            match = re.search(r"^kmm: run directory (\S+)$", ran.out, re.MULTILINE)
            assert match is not None, ran.out
            self._made_run = ran, self.home / match.group(1)
        return self._made_run

    def sample_run(self) -> Path:
        """A real run copied to the run directory the README's examples name."""
        target = self.home / SAMPLE_RUN
        if not target.exists():
            shutil.copytree(self.made_run()[1], target)
        return target

    def sim(self) -> Sim:
        """The README's ``kmm sim`` command, started once, on a free port instead of 8080.

        A shared machine may have 8080 in use; everything else is run as written.
        """
        if self._sim is None:
            command = SIM_COMMAND.replace("--port 8080", "--port 0")
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.home,
                env=self.base_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            banner = [process.stdout.readline() for _ in range(5)]
            last = [line.split()[-1] if line.split() else "" for line in banner]
            # listening on URL / REST URL / websocket URL / key id ID / key file PATH
            self._sim = Sim(process, banner, last[1], last[3], self.home / last[4])
        return self._sim

    def close(self) -> None:
        """Stops the local exchange (Ctrl-C), which must exit 0."""
        if self._sim is not None:
            self._sim.process.send_signal(signal.SIGINT)
            self._sim.process.communicate(timeout=TIMEOUT_S)
            assert self._sim.process.returncode == 0


def closed_port_url() -> str:
    """A REST URL on a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/trade-api/v2"


def fake_key(path: Path) -> Path:
    """A PEM file holding an RSA key no venue knows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return path


def make_recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


# --------------------------------------------------------------------------- the handlers

SIM_COMMAND = "python -m kmm sim --port 8080 --seed 7 --markets 6"
TICKER = "KXHIGHNY-26NOV24-B55.5"
KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"


def make_run(docs: Docs) -> None:
    """``make run`` runs ``python -m kmm``; run that for 5 s and compare with the README."""
    assert make_recipe("run") == ["$(BIN)/python -m kmm"]
    ran, run_dir = docs.made_run()
    assert_shows(list(block_after("make run").lines), ran.out)
    assert (run_dir / "markets.txt").read_text().count("\n") == 8


def make_test(docs: Docs) -> None:
    """``make test`` runs pytest, which is running this test: not run again."""
    assert make_recipe("test") == ["$(BIN)/python -m pytest"]


def export_key_id(docs: Docs) -> None:
    """The exports set the variables kmm reads: the resolved config shows them."""
    fake_key(docs.home / ".kalshi" / "demo.pem")
    block = block_of("python probe.py --env demo")
    exports = [c for c in shell_commands(block) if c.startswith("export ")]
    ran = docs.sh("\n".join([*exports, "python -m kmm config"]))
    assert ran.status == 0, ran.err
    auth = json.loads(ran.out)["auth"]
    assert auth["key_id"] == KEY_ID[:4] + "…"
    assert auth["private_key_path"] == str(docs.home / ".kalshi" / "demo.pem")


def probe_demo(docs: Docs) -> None:
    """Against the local exchange in place of demo, with its key: every check passes."""
    ran = docs.sh("python probe.py --env demo", **docs.sim().env())
    assert ran.status == 0, ran.out + ran.err
    assert "10 of 10 checks passed" in ran.out


def run_demo_ticker(docs: Docs) -> None:
    """The README's demo ticker is not on the local exchange: the documented refusal."""
    ran = docs.sh(f"python -m kmm run --env demo --markets {TICKER}", **docs.sim().env())
    assert ran.status == 2
    assert ran.one_line_error() == (
        f"kmm: markets: unknown tickers (the venue lists no such market): {TICKER}"
    )
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert ran.one_line_error().removeprefix("kmm: ") in readme


def run_demo_default(docs: Docs) -> None:
    """``kmm --env demo`` is ``kmm run --env demo``: it trades the local exchange for 2 s."""
    ran = docs.sh("python -m kmm --env demo --duration 2s", **docs.sim().env())
    assert ran.status == 0, ran.err
    assert "kmm: env demo (" in ran.out
    assert re.search(r"^t=.* quoting [1-6]/6 ", ran.out, re.MULTILINE), ran.out


def run_prod(docs: Docs) -> None:
    """With a fake key and prod at a port nothing listens on: exit 4, one line."""
    rest_url = closed_port_url()
    ran = docs.sh(
        f"python -m kmm run --env prod --live --markets {TICKER}",
        KMM__VENUE__REST_URL=rest_url,
        KMM__AUTH__KEY_ID=KEY_ID,
        KMM__AUTH__PRIVATE_KEY_PATH=str(fake_key(docs.home / "fake.pem")),
    )
    assert ran.status == 4
    assert ran.one_line_error() == f"kmm: cannot reach the venue at {rest_url}: Connection refused"


def config_override(docs: Docs) -> None:
    """Run as written: the overrides show in the resolved config."""
    command = next(c for c in readme_keys() if c.endswith("python -m kmm config"))
    ran = docs.sh(command)
    assert ran.status == 0, ran.err
    config = json.loads(ran.out)
    assert config["strategy"]["gamma"] == 0.2
    assert config["markets"]["tickers"] == ["KXFED-26DEC-T4.00"]


def sim_command(docs: Docs) -> None:
    """Prints what the README's comments show, and serves (the demo commands use it)."""
    sim = docs.sim()
    shown = [line.removeprefix("# ") for line in block_of(SIM_COMMAND).lines[1:]]
    assert_shows(shown, "".join(sim.banner))
    assert sim.key_file.is_file()


def probe_bare(docs: Docs) -> None:
    """No arguments, no key, no network: the local exchange in-process passes every check."""
    ran = docs.sh("python probe.py")
    assert ran.status == 0, ran.out + ran.err
    assert "in-process" in ran.out
    assert "10 of 10 checks passed" in ran.out


def report_newest(docs: Docs) -> None:
    """Opens the newest run (by its name's UTC start and number), never a non-run directory."""
    docs.made_run()
    docs.sample_run()
    (docs.home / "runs" / "zz-notes").mkdir(exist_ok=True)  # sorts last, is not a run
    ran = docs.sh("python -m kmm report")
    assert ran.status == 0, ran.err
    runs = [
        p for p in (docs.home / "runs").iterdir() if re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", p.name)
    ]
    newest = max(runs, key=lambda p: (p.name[:16], int(p.name[17:] or 1)))
    assert ran.out.splitlines()[0] == f"kmm report: {newest.relative_to(docs.home)}"
    assert (newest / "report.json").is_file()


def report_run(docs: Docs) -> None:
    """The README's sample run directory (a real run copied there)."""
    run_dir = docs.sample_run()
    ran = docs.sh(f"python -m kmm report {SAMPLE_RUN}")
    assert ran.status == 0, ran.err
    assert (run_dir / "report.json").is_file()


def pandas_block(docs: Docs) -> None:
    """Run in the scratch directory against the sample run: both frames load."""
    docs.sample_run()
    code = "\n".join(next(b for b in readme_blocks() if b.lang == "python").lines)
    namespace: dict[str, object] = {}
    cwd = Path.cwd()
    os.chdir(docs.home)
    try:
        exec(compile(code, "README.md python block", "exec"), namespace)
    finally:
        os.chdir(cwd)
    tape = namespace["tape"]
    assert len(tape) > 0  # type: ignore[arg-type]
    assert str(tape["ts"].dt.tz) == "UTC"  # type: ignore[index]


def sql_block(docs: Docs) -> None:
    """Each query runs on the ledger a real run wrote; the first finds that run."""
    _, run_dir = docs.made_run()
    text = "\n".join(next(b for b in readme_blocks() if b.lang == "sql").lines)
    queries = [q.strip() for q in text.split(";") if q.strip()]
    with sqlite3.connect(docs.home / "runs" / "ledger.sqlite") as db:
        results = [db.execute(query).fetchall() for query in queries]
    assert len(results) == 9
    assert run_dir.name in [row[0] for row in results[0]]


BACKTEST_COMMAND = "python -m kmm backtest --scenario jump --seed 3 --duration 10m"
BACKTEST_REPORT = "text: kmm report: runs/20261203T175936Z"


def backtest(docs: Docs) -> None:
    """The README's backtest, as written (10 simulated minutes take a few seconds); then
    ``kmm report`` on its run directory, the newest run."""
    ran = docs.sh(BACKTEST_COMMAND)
    assert ran.status == 0, ran.err
    shown = [line.removeprefix("# ") for line in block_of(BACKTEST_COMMAND).lines[1:]]
    assert_shows([line for line in shown if words(line)], ran.out)
    run_dir = docs.home / ran.out.strip().splitlines()[-1].removeprefix("kmm: run directory ")
    assert {"tape.csv", "orders.csv", "fills.csv", "ledger.sqlite"} <= {
        p.name for p in run_dir.iterdir()
    }
    report = docs.sh(f"python -m kmm report {run_dir.relative_to(docs.home)}")
    assert report.status == 0, report.err
    assert "net P&L after fees" in report.out
    shown = list(next(b for b in readme_blocks() if b.key == BACKTEST_REPORT).lines[1:])
    assert_shows([line for line in shown if words(line)], report.out)
    figures = [line for line in shown if line.startswith("  = net")]
    assert figures and figures[0] in report.out  # the same seed gives the same run


BENCH_STRATEGY_COMMAND = (
    "python -m kmm bench strategy --scenarios calm,thin --seeds 2 --duration 5m"
)


def bench_strategy(docs: Docs) -> None:
    """The README's quick scoreboard, as written: both scenarios' tables and the goals."""
    ran = docs.sh(BENCH_STRATEGY_COMMAND)
    assert ran.status == 0, ran.err
    for scenario in ("calm", "thin"):
        assert f"{scenario} (2 seeds x 5 min; kmm ranks" in ran.out
    for model in ("kmm", "fixed", "join", "hbot_as"):
        assert any(line.split()[:1] == [model] for line in ran.out.splitlines())
    assert "calm: kmm >= the best baseline" in ran.out
    assert "every run within its inventory cap" in ran.out


BENCH_SELECTION_COMMAND = (
    "python -m kmm bench selection --seeds 1 --duration 2m --universe 60 --top 3 --track 6"
)


def bench_selection(docs: Docs) -> None:
    """The README's quick selection board, as written: every arm and both comparisons."""
    ran = docs.sh(BENCH_SELECTION_COMMAND)
    assert ran.status == 0, ran.err
    for arm in ("first_n", "discovery", "always", "volatility"):
        assert any(
            line.split()[:1] == [arm] and len(line.split()) >= 6 for line in ran.out.splitlines()
        )
    assert "discovery vs first_n:" in ran.out and "volatility vs always:" in ran.out


SCAN_COMMAND = "KMM__SIM__SCENARIO=mixed KMM__SIM__MARKETS=300 python -m kmm scan --top 3"
MARKETS_COMMAND = (
    "KMM__SIM__SCENARIO=mixed KMM__SIM__MARKETS=300 python -m kmm markets --category Economics "
    "--closes-within 7d --limit 3"
)


def scan_or_markets(command: str) -> Callable[[Docs], None]:
    """The README's ``kmm scan`` or ``kmm markets``, as written: the lines it shows (their
    words: tickers and figures move with the date) and one row per ``--top``/``--limit``."""

    def check(docs: Docs) -> None:
        ran = docs.sh(command)
        assert ran.status == 0, ran.err
        shown = [line.removeprefix("# ") for line in block_of(command).lines[1:]]
        assert_shows([line for line in shown if words(line) and "KX" not in line], ran.out)
        rows = [line for line in ran.out.splitlines() if re.match(r"\s+(\d+\s+)?KX", line)]
        assert len(rows) == 3, ran.out

    return check


WATCH_COMMAND = (
    "KMM__SIM__SCENARIO=mixed KMM__SIM__MARKETS=300 python -m kmm scan --top 3 --watch "
    "--duration 90s"
)


def scan_watch(docs: Docs) -> None:
    """The README's ``kmm scan --watch``, as written: the table, the watch's header, every
    event line in the shown form, the count at the end; nothing recorded."""
    ran = docs.sh(WATCH_COMMAND, timeout_s=150.0)
    assert ran.status == 0, ran.err
    assert re.search(r"^kmm scan --watch: \d+ markets tracked; scans every 5 s", ran.out, re.M)
    events = [line for line in ran.out.splitlines() if re.match(r"\d\d:\d\d:\d\d KX", line)]
    assert all(" -> " in line or " ended (" in line for line in events), events
    assert re.search(r"^kmm scan --watch: \d+ events$", ran.out, re.M), ran.out[-2000:]


CAPTURE_COMMAND = "python -m kmm capture --duration 20s"
SAMPLE_CAPTURE = "runs/20261123T130000Z"
REPLAY_COMMAND = (
    f"python -m kmm backtest --capture {SAMPLE_CAPTURE}/capture.jsonl.gz --queue probabilistic"
)


def capture(docs: Docs) -> Path:
    """The README's capture, as written; copied (once) to the run directory the replay
    example names."""
    target = docs.home / SAMPLE_CAPTURE
    if not target.exists():
        ran = docs.sh(CAPTURE_COMMAND)
        assert ran.status == 0, ran.err
        (made,) = [p for p in (docs.home / "runs").glob("*/capture.jsonl.gz") if p.parent != target]
        assert (made.parent / "markets.json").is_file()
        shutil.copytree(made.parent, target)
    return target


def capture_command(docs: Docs) -> None:
    """The README's capture: ``capture.jsonl.gz`` and ``markets.json`` in a run directory."""
    assert (capture(docs) / "capture.jsonl.gz").is_file()


def replay(docs: Docs) -> None:
    """The README's capture replay, as written, on the capture the README's example made."""
    capture(docs)
    ran = docs.sh(REPLAY_COMMAND)
    assert ran.status == 0, ran.err
    assert "probabilistic queue" in ran.out.splitlines()[0]
    run_dir = docs.home / ran.out.strip().splitlines()[-1].removeprefix("kmm: run directory ")
    assert (run_dir / "fills.csv").is_file() and (run_dir / "backtest.json").is_file()


STATUS_BOT = "python -m kmm --duration 60s > /dev/null 2>&1 &"
STATUS_COMMANDS = (STATUS_BOT, "python -m kmm status", "python -m kmm status --json")
STATUS_ERROR = "kmm: status: no running bot under runs (kmm run starts one)"
OVERRIDES_BLOCK = "yaml: markets:"


def status_session(docs: Docs) -> dict[str, Ran]:
    """The README's ``kmm status`` block as written, once: a bot started in the background,
    ``kmm status`` as soon as it answers, its JSON; then the bot is stopped (SIGTERM, as
    Ctrl-C would) and ``kmm status`` says no bot runs."""
    found: dict[str, Ran] | None = getattr(docs, "status_runs", None)
    if found is not None:
        return found
    assert block_of(STATUS_BOT).lines == STATUS_COMMANDS
    started = {p.name for p in (docs.home / "runs").glob("*")}
    docs.sh(STATUS_BOT)
    runs: dict[str, Ran] = {}
    for _ in range(150):  # a user reads the banner first: a second or two
        runs[STATUS_COMMANDS[1]] = docs.sh(STATUS_COMMANDS[1])
        if runs[STATUS_COMMANDS[1]].status == 0:
            break
        time.sleep(0.1)
    runs[STATUS_COMMANDS[2]] = docs.sh(STATUS_COMMANDS[2])
    new = [p for p in (docs.home / "runs").glob("*") if p.name not in started and p.is_dir()]
    assert len(new) == 1, new
    pid = int(json.loads(runs[STATUS_COMMANDS[2]].out)["status"]["pid"])
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):
        ended = docs.sh(STATUS_COMMANDS[1])
        if ended.status == 1:
            break
        time.sleep(0.1)
    runs["ended"] = ended
    docs.status_runs = runs  # type: ignore[attr-defined]
    return runs


def status_command(docs: Docs) -> None:
    """``kmm status``: the running bot's tables, then, once it stopped, the documented error."""
    runs = status_session(docs)
    shown = runs[STATUS_COMMANDS[1]]
    assert shown.status == 0, shown.err
    assert "QUOTING" in shown.out and "resting orders" in shown.out
    assert re.search(r"^dashboard: http://127\.0\.0\.1:\d+/#token=\S+$", shown.out, re.M)
    assert runs["ended"].one_line_error() == STATUS_ERROR
    assert block_after(STATUS_COMMANDS[2]).lines == (STATUS_ERROR,)


def status_json(docs: Docs) -> None:
    """``kmm status --json``: the API's four views of the same run."""
    ran = status_session(docs)[STATUS_COMMANDS[2]]
    assert ran.status == 0, ran.err
    views = json.loads(ran.out)
    assert set(views) == {"status", "markets", "orders", "risk"}
    assert len(views["markets"]) == 8 and views["status"]["state"] == "quoting"


def status_bot(docs: Docs) -> None:
    """The background bot of the block: it served the status above and stopped cleanly."""
    runs = status_session(docs)
    assert runs[STATUS_COMMANDS[1]].status == 0


def overrides_block(docs: Docs) -> None:
    """The README's overrides and alerts are a valid config, as written."""
    block = next(b for b in readme_blocks() if b.key == OVERRIDES_BLOCK)
    path = docs.home / "overrides.yaml"
    path.write_text("\n".join(block.lines) + "\n", encoding="utf-8")
    ran = docs.sh(f"python -m kmm --config {path.name} config")
    assert ran.status == 0, ran.err
    config = json.loads(ran.out)
    overrides = config["markets"]["overrides"]
    assert overrides["KXSIMA-26DEC05-T40"] == {"enabled": False}
    assert overrides["KXSIMC-26DEC07-T40"]["min_spread_cents"] == "4"
    assert config["ops"]["webhook_url"] == "https://hooks.slack.com/…"  # its secret masked


SPACE_BLOCK = "yaml: # kmm sweep's search space: dotted config fields mapped to ranges or choices."
SWEEP_COMMAND = (
    "python -m kmm sweep --space examples/space.yaml --scenarios calm,jump --seeds 1-4 "
    "--folds 3 --trials 4 --duration 2m --markets 3 --out sweeps/demo"
)
BEST_COMMAND = "python -m kmm --config sweeps/demo/best.yaml config"
CALIBRATE_BACKTEST = "python -m kmm backtest --scenario settlement --seed 1 --duration 30m"
CALIBRATE_COMMAND = "python -m kmm calibrate --every 10s"


def space_block(docs: Docs) -> None:
    """The space file shown is ``examples/space.yaml``, which the sweep below reads."""
    block = next(b for b in readme_blocks() if b.key == SPACE_BLOCK)
    assert "\n".join(block.lines) + "\n" == (ROOT / "examples" / "space.yaml").read_text()


def sweep_command(docs: Docs) -> None:
    """The README's sweep, as written, on a local cluster: the banner, a progress line per
    trial, the fold table and the files; the same seeds give the same folds."""
    if not (docs.home / "examples").exists():
        (docs.home / "examples").symlink_to(ROOT / "examples")
    ran = docs.sh(SWEEP_COMMAND, timeout_s=120)
    assert ran.status == 0, ran.err
    shown = list(block_after(BEST_COMMAND).lines)
    assert_shows([line for line in shown if words(line) and line != "..."], ran.out)
    assert ran.out.count("sweep: fold ") == 12
    out = docs.home / "sweeps" / "demo"
    assert {"trials.csv", "folds.csv", "importance.csv", "best.yaml", "folds.png", "study.db"} <= {
        p.name for p in out.iterdir()
    }
    folds = [line for line in shown if re.match(r"\s+\d  seed", line)]
    assert folds and all(line in ran.out for line in folds), ran.out


def best_config(docs: Docs) -> None:
    """The sweep's best.yaml is a config file kmm accepts."""
    if not (docs.home / "sweeps" / "demo" / "best.yaml").exists():
        sweep_command(docs)
    ran = docs.sh(BEST_COMMAND)
    assert ran.status == 0, ran.err
    strategy = json.loads(ran.out)["strategy"]
    assert 0.1 <= strategy["gamma"] <= 2.0 and strategy["fair_value"] in ("mid", "microprice")


def calibrate_backtest(docs: Docs) -> None:
    """The settlement scenario's backtest, whose markets settle for calibrate below."""
    ran = docs.sh(CALIBRATE_BACKTEST)
    assert ran.status == 0, ran.err
    docs.calibrate_run = ran.out.strip().splitlines()[-1].removeprefix("kmm: run directory ")  # type: ignore[attr-defined]


def calibrate_command(docs: Docs) -> None:
    """``kmm calibrate`` over every run of the README's directory: the tables shown, and its
    files; the settlement run above is among them."""
    if not hasattr(docs, "calibrate_run"):
        calibrate_backtest(docs)
    ran = docs.sh(CALIBRATE_COMMAND)
    assert ran.status == 0, ran.err
    shown = list(block_after(CALIBRATE_COMMAND).lines)
    assert_shows([line for line in shown if words(line)], ran.out)
    written = ran.out.strip().splitlines()[-1].removeprefix("kmm calibrate: ").split(", ")
    assert [Path(w).name for w in written] == ["calibration.json", "calibration.png"]
    assert all((docs.home / w).is_file() for w in written)


WATCH_MARKET = "python -m kmm watch KXSIMA --levels 3 --duration 10"
WATCH_PRIVATE = "python -m kmm watch KXSIMA --with-private --levels 3 --duration 10"


def watch_market(docs: Docs) -> None:
    """``kmm watch`` on the default local exchange, as written: the series' first market's
    banner, its snapshot with three levels a side, the feed, the summary."""
    ran = docs.sh(WATCH_MARKET, timeout_s=40)
    assert ran.status == 0, ran.err
    lines = ran.out.splitlines()
    banner = next(line for line in lines if line.startswith("kmm watch: "))
    assert re.match(r"kmm watch: KXSIMA-\w+-\w+ \(active, closes ", banner), banner
    snapshot = next(line for line in lines if " snapshot " in line)
    bids, asks = snapshot.split(" snapshot ", 1)[1].split(" | ")
    assert bids.count(" x ") == 3 and asks.count(" x ") == 3, snapshot
    assert re.search(r"^kmm watch: \d+ frames: 1 snapshots, \d+ deltas", ran.out, re.M)


def watch_private(docs: Docs) -> None:
    """``--with-private`` subscribes our fills, orders and position too (none trade on a
    fresh exchange: tests/sim/test_listen.py shows them with an order of ours)."""
    ran = docs.sh(WATCH_PRIVATE, timeout_s=40)
    assert ran.status == 0, ran.err
    assert "our fills, orders and position marked OUR" in ran.out
    for channel in ("fill", "user_orders", "market_positions"):
        assert re.search(rf" subscribed +{channel} ", ran.out), ran.out


HISTORY_COMMANDS = (
    "python -m kmm history",
    "python -m kmm history --by days --since 7d",
    "python -m kmm history --by markets --json",
)


def history_command(docs: Docs) -> None:
    """The README's ``kmm history`` commands on the README directory's ledger: the tables'
    headers as shown, a total row, and the JSON's exact amounts."""
    docs.made_run()
    for command in HISTORY_COMMANDS:
        ran = docs.sh(command)
        assert ran.status == 0, ran.err
        if command.endswith("--json"):
            rows = json.loads(ran.out)
            assert rows and all(re.fullmatch(r"-?\d+\.\d{6}", r["fees"]) for r in rows)
        else:
            assert "total" in ran.out
    shown = list(block_after(HISTORY_COMMANDS[2]).lines)
    ran = docs.sh(HISTORY_COMMANDS[0])
    assert_shows([shown[0].split(" (")[0], shown[2]], ran.out)


FLATTEN_NAMED = (
    f"python -m kmm flatten --env demo --markets {TICKER} --passive --max-slippage-cents 2 "
    "--timeout 10m"
)


def flatten_demo(docs: Docs) -> None:
    """Against the README's local exchange in place of demo: whatever the account holds there
    (the demo runs above may have left positions) is closed or named, nothing rests."""
    ran = docs.sh("python -m kmm flatten --env demo --timeout 20s", **docs.sim().env())
    assert ran.status in (0, 5), ran.out + ran.err
    assert "shutdown: no order of ours rests" in ran.out or (
        "flatten: no position to work out" in ran.out
    ), ran.out
    if ran.status == 5:
        assert ran.one_line_error().startswith("kmm flatten: positions left: ")


def flatten_named(docs: Docs) -> None:
    """The README's demo ticker is not held on the local exchange: nothing to do, exit 0."""
    ran = docs.sh(FLATTEN_NAMED, **docs.sim().env())
    assert ran.status == 0, ran.out + ran.err
    assert f"flatten: {TICKER}: no position" in ran.out
    assert "flatten: no position to work out" in ran.out


COMMANDS: dict[str, Callable[[Docs], None]] = {
    CAPTURE_COMMAND: capture_command,
    REPLAY_COMMAND: replay,
    BACKTEST_COMMAND: backtest,
    SCAN_COMMAND: scan_or_markets(SCAN_COMMAND),
    MARKETS_COMMAND: scan_or_markets(MARKETS_COMMAND),
    WATCH_COMMAND: scan_watch,
    BENCH_STRATEGY_COMMAND: bench_strategy,
    BENCH_SELECTION_COMMAND: bench_selection,
    "make run": make_run,
    "make test": make_test,
    f"export KMM__AUTH__KEY_ID={KEY_ID}": export_key_id,
    "export KMM__AUTH__PRIVATE_KEY_PATH=~/.kalshi/demo.pem": export_key_id,
    "python probe.py --env demo": probe_demo,
    f"python -m kmm run --env demo --markets {TICKER}": run_demo_ticker,
    "python -m kmm --env demo": run_demo_default,
    "python -m kmm flatten --env demo": flatten_demo,
    FLATTEN_NAMED: flatten_named,
    f"python -m kmm run --env prod --live --markets {TICKER}": run_prod,
    "python probe.py": probe_bare,
    "KMM__STRATEGY__GAMMA=0.2 KMM__MARKETS__TICKERS='[KXFED-26DEC-T4.00]' python -m kmm config": (
        config_override
    ),
    SIM_COMMAND: sim_command,
    "python: import pandas as pd": pandas_block,
    "sql: -- P&L, fees and fills per run": sql_block,
    "python -m kmm report": report_newest,
    f"python -m kmm report {SAMPLE_RUN}": report_run,
    STATUS_BOT: status_bot,
    STATUS_COMMANDS[1]: status_command,
    STATUS_COMMANDS[2]: status_json,
    OVERRIDES_BLOCK: overrides_block,
    **dict.fromkeys(HISTORY_COMMANDS, history_command),
    WATCH_MARKET: watch_market,
    WATCH_PRIVATE: watch_private,
    SPACE_BLOCK: space_block,
    SWEEP_COMMAND: sweep_command,
    BEST_COMMAND: best_config,
    CALIBRATE_BACKTEST: calibrate_backtest,
    CALIBRATE_COMMAND: calibrate_command,
}
"""Every command or program the README shows, and how this test runs it."""

NOT_COMMANDS: dict[str, str] = {
    "ingest ──▶ normalize ──▶ decide ──▶ execute ──▶ record": "the pipeline diagram",
    "kmm: local exchange started at http://127.0.0.1:46527 (state in state/sim)": (
        "make run's output: make_run compares it with a real run's"
    ),
    "hot path (8 markets, 200000 deltas, best of 5):": "make bench's output (not run by tests)",
    "discovery over 5,000 markets of the mixed universe (loopback):": (
        "make bench's output (not run by tests)"
    ),
    "backtest (8 markets, calm, 1800 s simulated; targets >= 120x real time, <= 3x the hot path "
    "per frame):": "make bench's output (not run by tests)",
    "tick-to-order over loopback (... targets p50 <= 150 µs, p99 <= 500 µs):": (
        "make bench's output (not run by tests)"
    ),
    "src/kmm/": "the source layout",
    STATUS_ERROR: "kmm status's error once the bot stopped: status_command checks it",
    "runs (1)": "kmm history's table: history_command compares its header",
    "useradd --system --home-dir /var/lib/kmm --create-home kmm": (
        "installing the systemd unit as root on a host: tests/unit/test_deploy.py verifies it"
    ),
    "docker run -d --name kmm --restart on-failure:5 -v /etc/kmm:/etc/kmm:ro -v "
    "/var/lib/kmm:/var/lib/kmm --env-file /etc/kmm/kmm.env kmm": (
        "running the image needs a Docker daemon; tests/unit/test_deploy.py checks the Dockerfile"
    ),
    "kmm watch: KXSIMA-26DEC07-T40 (active, closes 2026-12-07T20:00:00Z) on "
    "ws://127.0.0.1:18080/trade-api/ws/v2; our fills, orders and position marked OUR; times "
    "are UTC (Ctrl-C stops)": "kmm watch's output beside a trading bot: tests/sim/test_listen.py",
    "kmm sweep: 4 parameters, 4 sessions, 3 folds x 4 trials, tpe, objective net; 2 workers on "
    "a local cluster; study in sweeps/demo/study.db": "the sweep's output: sweep_command compares",
    "kmm calibrate: 80 samples of 8 settled markets in 4 runs": (
        "calibrate's output: calibrate_command compares"
    ),
    'curl -s -H "Authorization: Bearer $(cat runs/<run>/control.token)" '
    "$(cat runs/<run>/control.url)api/markets": (
        "the API with curl (curl may be missing): tests/mock/test_control.py drives each endpoint"
    ),
    "text: kmm bench strategy: 120 backtests (kmm, fixed, join, hbot_as on calm, trending, "
    "jump, thin, near_close, settlement; seeds 1-5; 1800 s each; 2 jobs)": (
        "make bench's scoreboard (not run by tests; the quick board above is)"
    ),
    BACKTEST_REPORT: (
        "the report of the README's backtest: backtest() compares it with a real one"
    ),
    "text: discovery: 285 open markets, 193 candidates, 10 chosen (6 requests in 0.04 s)": (
        "kmm run --mode discovery's console lines: tests/sim/test_discovery_run.py runs it"
    ),
    "text: rescore: added KXSIME-26DEC05-T70, KXSIMB-26DEC31-T50; dropping KXSIMD-26DEC04-T50, "
    "KXSIMJ-26DEC08-T40": "rescoring's console lines: tests/sim/test_rescore.py runs it",
    "text: selection on the mixed universe (300 markets; discovery and first_n trade 10, "
    "always and volatility the best 30):": (
        "make bench's selection board (not run by tests; the quick board above is)"
    ),
    "text: volatility: session 1 KXSIMV-26DEC05-T20: sigma event (range 2.0c, sigma 0.00180, "
    "mean_reverting, mean_reverting), quoting for up to 900 s, cap 3.00": (
        "kmm run --mode volatility's console lines: tests/sim/test_volatility_mode.py runs it"
    ),
}
"""Every other block, and why it is not a command."""


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docs]:
    scratch = Docs(tmp_path_factory.mktemp("readme"))
    try:
        yield scratch
    finally:
        scratch.close()


def test_every_readme_block_is_handled() -> None:
    shown = readme_keys()

    unhandled = [key for key in shown if key not in COMMANDS and key not in NOT_COMMANDS]
    stale = [key for key in [*COMMANDS, *NOT_COMMANDS] if key not in shown]

    assert unhandled == [], "README commands without a handler in tests/test_readme.py"
    assert stale == [], "handlers in tests/test_readme.py for commands no longer in README"


LONG_COMMANDS: dict[str, float] = {WATCH_COMMAND: 180.0, SWEEP_COMMAND: 150.0}
"""Commands that run longer than the suite's per-test timeout, as written, and their own."""


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(k, marks=pytest.mark.timeout(LONG_COMMANDS[k])) if k in LONG_COMMANDS else k
        for k in COMMANDS
        if k in readme_keys()
    ],
)
def test_the_readme_command_works_as_documented(docs: Docs, command: str) -> None:
    COMMANDS[command](docs)
