from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.book.sequence import SeqGap, SeqStatus, SequenceTracker


def test_the_first_seq_seen_for_a_sid_is_accepted_whatever_it_is() -> None:
    tracker = SequenceTracker()

    assert tracker.check(2, 41) is SeqStatus.OK
    assert tracker.last(2) == 41


def test_consecutive_seqs_are_in_order() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 2)

    statuses = [tracker.check(2, seq) for seq in (3, 4, 5)]

    assert statuses == [SeqStatus.OK] * 3
    assert tracker.gaps == 0


def test_a_duplicate_is_stale_and_does_not_move_the_baseline() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 7)

    assert tracker.check(2, 7) is SeqStatus.STALE
    assert tracker.check(2, 8) is SeqStatus.OK


def test_an_old_seq_is_stale() -> None:
    tracker = SequenceTracker()
    for seq in (7, 8, 9):
        tracker.check(2, seq)

    assert tracker.check(2, 4) is SeqStatus.STALE
    assert tracker.last(2) == 9


def test_a_skipped_seq_is_a_gap_that_is_counted_and_described() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 7)

    status = tracker.check(2, 10)

    assert status is SeqStatus.GAP
    assert tracker.gaps == 1
    assert tracker.last_gap == SeqGap(sid=2, expected=8, received=10)
    assert tracker.last_gap.missing == 2


def test_after_a_gap_the_new_seq_is_the_baseline_so_one_drop_is_one_gap() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 7)
    tracker.check(2, 10)

    statuses = [tracker.check(2, seq) for seq in (11, 12)]

    assert statuses == [SeqStatus.OK, SeqStatus.OK]
    assert tracker.gaps == 1


def test_a_late_message_from_before_a_gap_is_stale() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 7)
    tracker.check(2, 10)

    assert tracker.check(2, 8) is SeqStatus.STALE


def test_each_sid_has_its_own_sequence() -> None:
    tracker = SequenceTracker()
    tracker.check(1, 100)
    tracker.check(2, 5)

    assert tracker.check(1, 101) is SeqStatus.OK
    assert tracker.check(2, 7) is SeqStatus.GAP
    assert tracker.check(1, 102) is SeqStatus.OK
    assert tracker.last_gap is not None
    assert tracker.last_gap.sid == 2


def test_a_snapshot_reset_makes_its_seq_the_baseline() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 7)
    tracker.check(2, 10)  # gap: the owner asks for a snapshot

    tracker.reset(2, 15)

    assert tracker.check(2, 16) is SeqStatus.OK
    assert tracker.check(2, 12) is SeqStatus.STALE


def test_a_reset_may_move_the_baseline_backwards() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 50)

    tracker.reset(2, 1)

    assert tracker.check(2, 2) is SeqStatus.OK


def test_a_reset_without_a_seq_accepts_the_next_one_as_first() -> None:
    tracker = SequenceTracker()
    tracker.check(2, 50)

    tracker.reset(2)

    assert tracker.check(2, 3) is SeqStatus.OK
    assert tracker.check(2, 4) is SeqStatus.OK


def test_forgetting_a_sid_drops_its_sequence_and_only_its_own() -> None:
    tracker = SequenceTracker()
    tracker.check(1, 10)
    tracker.check(2, 20)

    tracker.forget(1)

    assert tracker.last(1) is None
    assert tracker.last(2) == 20
    assert tracker.check(1, 3) is SeqStatus.OK


def test_no_gap_has_been_seen_on_a_new_tracker() -> None:
    tracker = SequenceTracker()

    assert (tracker.gaps, tracker.last_gap) == (0, None)


@settings(max_examples=100)
@given(
    start=st.integers(min_value=1, max_value=10**9),
    steps=st.lists(st.integers(min_value=-3, max_value=3), max_size=60),
)
def test_the_status_always_follows_the_rule_against_the_last_accepted_seq(
    start: int, steps: list[int]
) -> None:
    tracker = SequenceTracker()
    tracker.check(9, start)
    last, gaps, seq = start, 0, start

    for step in steps:
        seq += step
        status = tracker.check(9, seq)
        if seq == last + 1:
            assert status is SeqStatus.OK
            last = seq
        elif seq <= last:
            assert status is SeqStatus.STALE
        else:
            assert status is SeqStatus.GAP
            last, gaps = seq, gaps + 1

    assert (tracker.last(9), tracker.gaps) == (last, gaps)
