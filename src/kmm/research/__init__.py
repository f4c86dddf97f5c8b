"""Research at scale: walk-forward parameter sweeps on Dask (:mod:`kmm.research.sweep`), and
calibration of the quoted fair value against outcomes (:mod:`kmm.research.calibrate`).

The heavy modules (Dask, Optuna) are imported by the commands that use them, never by
``import kmm.cli``: the names the command line offers live here.
"""

from typing import Final

__all__ = ["OBJECTIVES", "SAMPLERS"]

OBJECTIVES: Final = ("net", "net_per_drawdown", "mean_over_sd")
"""What a sweep maximises (see :func:`kmm.research.sweep.objective`)."""
SAMPLERS: Final = ("tpe", "random", "grid")
"""Optuna's samplers a sweep can use."""
