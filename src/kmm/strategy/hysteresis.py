"""A two-state switch with hysteresis, counted in checks: on after N bad ones in a row, off
after M good ones in a row. The guards of :mod:`kmm.strategy` share it. Pure."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Hysteresis"]


@dataclass(slots=True)
class Hysteresis:
    """Turns a stream of checks into a state that does not flicker.

    Attributes:
        trigger: Bad checks in a row that switch it on (at least 1).
        recover: Good checks in a row that switch it off again (at least 1).
        on: The state.
        bad_run: Bad checks in a row so far.
        good_run: Good checks in a row so far.
    """

    trigger: int
    recover: int
    on: bool = False
    bad_run: int = 0
    good_run: int = 0

    def check(self, bad: bool) -> bool:
        """Counts one check; returns the state after it."""
        if bad:
            self.bad_run += 1
            self.good_run = 0
            if self.bad_run >= self.trigger:
                self.on = True
        else:
            self.good_run += 1
            self.bad_run = 0
            if self.on and self.good_run >= self.recover:
                self.on = False
        return self.on

    def reset(self) -> None:
        """Off, with no run counted."""
        self.on = False
        self.bad_run = self.good_run = 0
