"""Executes every code cell of examples/tape_analysis.ipynb against a run written by the test.

No Jupyter kernel: the notebook's JSON is parsed and its code cells run with ``exec`` in one
namespace, in order, with matplotlib's Agg backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest

from tests.unit.test_report import A, B, write_run

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tape_analysis.ipynb"


def execute_notebook() -> dict[str, Any]:
    """Runs the notebook's code cells in order; returns the namespace they shared."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    matplotlib.use("Agg")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        for number, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                code = compile("".join(cell["source"]), f"{NOTEBOOK.name} cell {number}", "exec")
                exec(code, namespace)
    finally:
        plt.close("all")
    return namespace


def test_the_notebook_loads_a_runs_csvs_and_redraws_its_equity_curve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    run_dir = write_run(tmp_path / "elsewhere" / "20261123T120000Z")
    monkeypatch.setenv("KMM_RUN_DIR", str(run_dir))

    # Act
    namespace = execute_notebook()

    # Assert: the same figures as kmm report's (-1.84 net, 2.00 max drawdown)
    assert namespace["run"] == run_dir
    assert (len(namespace["tape"]), len(namespace["fills"]), len(namespace["orders"])) == (9, 3, 9)
    assert str(namespace["tape"]["ts"].dt.tz) == "UTC"
    assert namespace["equity"].iloc[-1] == pytest.approx(-1.84)
    assert namespace["drawdown"] == pytest.approx(2.0)
    assert namespace["inventory"].max() == pytest.approx(15.0)
    assert namespace["per_market"].loc[A, "maker_share"] == pytest.approx(1.0)
    assert namespace["per_market"].loc[B, "fees"] == pytest.approx(0.05)


def test_without_kmm_run_dir_the_notebook_opens_the_newest_run_under_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    write_run(tmp_path / "runs" / "20261123T120000Z")
    write_run(tmp_path / "runs" / "20261124T080000Z")
    monkeypatch.delenv("KMM_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)

    # Act
    namespace = execute_notebook()

    # Assert
    assert namespace["run"] == Path("runs") / "20261124T080000Z"


def test_the_notebook_skips_what_is_not_a_run_under_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the local exchange's old state dir and a stray folder sort after the runs
    write_run(tmp_path / "runs" / "20261124T080000Z")
    write_run(tmp_path / "runs" / "20261124T080000Z-2")
    (tmp_path / "runs" / "sim").mkdir()
    (tmp_path / "runs" / "sim" / "keys.json").write_text("[]")
    (tmp_path / "runs" / "zz-notes").mkdir()
    monkeypatch.delenv("KMM_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)

    # Act
    namespace = execute_notebook()

    # Assert
    assert namespace["run"] == Path("runs") / "20261124T080000Z-2"


def test_the_notebook_is_stored_without_outputs() -> None:
    # Arrange
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))

    # Act
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]

    # Assert
    assert notebook["nbformat"] == 4
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
