"""Sequence checking for websocket subscriptions that carry ``seq``.

Theory of operation
-------------------
Kalshi numbers the messages of an ``orderbook_delta`` subscription with one ``seq`` per
subscription id (``sid``), shared by every market on it. :class:`SequenceTracker` keeps the
last accepted ``seq`` of each sid and classifies each new one:

* **OK**: the first ``seq`` seen for the sid, or exactly ``last + 1``. It becomes the new last.
* **STALE**: ``seq <= last``, a duplicate or a replay. Nothing is recorded; drop the message.
* **GAP**: ``seq > last + 1``, so at least one message was lost. Which market it was for
  cannot be known, so every book on the sid must be marked untrusted until a fresh snapshot
  arrives for it. The tracker takes the new ``seq`` as the new baseline, so one lost run is
  one gap (the next in-order message is OK again) while the owner resnapshots; the message
  that revealed the gap should still not be applied to an untrusted book. :attr:`gaps`
  counts gaps and :attr:`last_gap` describes the latest one for the log.

A snapshot starts a book afresh, so the owner calls :meth:`SequenceTracker.reset` with the
snapshot's ``seq`` instead of :meth:`SequenceTracker.check` (Kalshi does not document whether
a requested snapshot advances the sid's ``seq``; resetting accepts it either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["SeqGap", "SeqStatus", "SequenceTracker"]


class SeqStatus(IntEnum):
    """What :meth:`SequenceTracker.check` made of a sequence number."""

    OK = 0
    """In order (or the first for its sid): apply the message."""
    STALE = 1
    """A duplicate or an old message: drop it."""
    GAP = 2
    """Messages were lost: mark every book on the sid untrusted and resnapshot."""


@dataclass(frozen=True, slots=True)
class SeqGap:
    """One detected gap: on ``sid``, ``expected`` was due and ``received`` arrived."""

    sid: int
    expected: int
    received: int

    @property
    def missing(self) -> int:
        """How many messages were lost."""
        return self.received - self.expected


class SequenceTracker:
    """The last accepted ``seq`` per subscription id.

    Attributes:
        gaps: The number of gaps seen since creation.
        last_gap: The most recent gap, or ``None`` if there has been none.
        last_by_sid: The last accepted ``seq`` per sid. A hot path may accept an in-order
            message itself (``last_by_sid[sid] = seq`` when ``seq == last + 1``), which is
            exactly what :meth:`check` does for it, and call :meth:`check` for the rest.
    """

    __slots__ = ("_last", "gaps", "last_by_sid", "last_gap")

    def __init__(self) -> None:
        self._last: dict[int, int] = {}
        self.last_by_sid = self._last
        self.gaps = 0
        self.last_gap: SeqGap | None = None

    def check(self, sid: int, seq: int) -> SeqStatus:
        """Classifies ``seq`` for ``sid`` and records it when it is OK or a gap.

        Args:
            sid: The subscription id of the message.
            seq: The message's sequence number.

        Returns:
            :attr:`SeqStatus.OK`, :attr:`SeqStatus.STALE` or :attr:`SeqStatus.GAP`.
        """
        last = self._last.get(sid, seq - 1)
        if seq == last + 1:
            self._last[sid] = seq
            return SeqStatus.OK
        if seq <= last:
            return SeqStatus.STALE
        self._last[sid] = seq
        self.gaps += 1
        self.last_gap = SeqGap(sid, last + 1, seq)
        return SeqStatus.GAP

    def reset(self, sid: int, seq: int | None = None) -> None:
        """Restarts a sid's sequence, for example on a snapshot.

        Args:
            sid: The subscription id.
            seq: The snapshot's ``seq``, which becomes the last accepted one; with ``None``
                the next ``seq`` seen for the sid is accepted whatever it is.
        """
        if seq is None:
            self._last.pop(sid, None)
        else:
            self._last[sid] = seq

    def forget(self, sid: int) -> None:
        """Drops a sid entirely (after unsubscribing)."""
        self._last.pop(sid, None)

    def last(self, sid: int) -> int | None:
        """The last accepted ``seq`` of ``sid``, or ``None`` if there is none."""
        return self._last.get(sid)
