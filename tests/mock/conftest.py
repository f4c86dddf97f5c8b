"""Fixtures shared with the local exchange's tests (one demo key per session: keygen is slow)."""

from __future__ import annotations

from tests.sim.conftest import sim_key_template, sim_state_dir

__all__ = ["sim_key_template", "sim_state_dir"]
