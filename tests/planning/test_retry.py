import pytest

from planning.placement import PlanningError
from planning.retry import (
    Action,
    FailureKind,
    PickAttempt,
    RetryBudget,
    RetryDecision,
    StowAttempt,
    next_pick_action,
    next_stow_action,
)

F = FailureKind
BINS = (("A", 3), ("B", 2), ("C", 0))
WIDE = RetryBudget(max_total_attempts=20)


def run_stow(failures, bins=BINS, budget=WIDE):
    """Drive the policy: start at bin A placement 0, apply each failure, follow decisions."""
    history: list[StowAttempt] = []
    target = (bins[0][0], 0)
    decisions: list[RetryDecision] = []
    for failure in failures:
        history.append(StowAttempt(target[0], target[1], failure))
        d = next_stow_action(history, bins, budget)
        decisions.append(d)
        if d.action is Action.HANDOFF:
            break
        target = (d.bin_id, d.placement_index)
    return decisions


def test_contact_force_walks_placements_then_bins_then_handoff():
    ds = run_stow([F.CONTACT_FORCE] * 10)
    steps = [(d.action, d.bin_id, d.placement_index) for d in ds]
    assert steps == [
        (Action.NEXT_PLACEMENT, "A", 1),
        (Action.NEXT_PLACEMENT, "A", 2),
        (Action.NEXT_BIN, "B", 0),  # bin A: budget of 3 attempts spent
        (Action.NEXT_PLACEMENT, "B", 1),
        (Action.NEXT_BIN, "C", None),  # B: no untried placement left; C has none ranked yet -> re-plan
        (Action.HANDOFF, None, None),
    ]
    assert "no untried bin left" in ds[-1].reason
    assert "re-plan" in ds[4].reason
    assert all(d.reason for d in ds)


def test_no_placement_goes_to_next_bin_then_handoff():
    history = [StowAttempt("A", None, F.NO_PLACEMENT)]
    d = next_stow_action(history, BINS)
    assert (d.action, d.bin_id, d.placement_index) == (Action.NEXT_BIN, "B", 0)
    history += [StowAttempt("B", None, F.NO_PLACEMENT), StowAttempt("C", None, F.NO_PLACEMENT)]
    d = next_stow_action(history, BINS)
    assert d.action is Action.HANDOFF and d.reason.startswith("no_placement")


def test_item_slipped_retries_same_then_escalates():
    ds = run_stow([F.ITEM_SLIPPED, F.ITEM_SLIPPED])
    assert (ds[0].action, ds[0].bin_id, ds[0].placement_index) == (Action.RETRY_SAME, "A", 0)
    assert (ds[1].action, ds[1].placement_index) == (Action.NEXT_PLACEMENT, 1)
    assert "retry budget spent" in ds[1].reason


def test_repeated_eject_failure_hands_off_with_tool_fault():
    ds = run_stow([F.EJECT_FAILED, F.EJECT_FAILED])
    assert ds[0].action is Action.RETRY_SAME
    assert ds[1].action is Action.HANDOFF and "tool fault" in ds[1].reason


def test_suction_lost_in_stow_hands_off():
    d = next_stow_action([StowAttempt("A", 0, F.SUCTION_LOST)], BINS)
    assert d.action is Action.HANDOFF and "suction_lost" in d.reason


def test_total_budget_handoff():
    ds = run_stow([F.CONTACT_FORCE] * 10, budget=RetryBudget(max_total_attempts=2))
    assert [d.action for d in ds] == [Action.NEXT_PLACEMENT, Action.HANDOFF]
    assert "total attempt budget exhausted (2/2)" in ds[-1].reason


def test_deterministic():
    a = run_stow([F.CONTACT_FORCE, F.ITEM_SLIPPED, F.TARGET_NOT_FOUND, F.CONTACT_FORCE])
    b = run_stow([F.CONTACT_FORCE, F.ITEM_SLIPPED, F.TARGET_NOT_FOUND, F.CONTACT_FORCE])
    assert a == b


def test_pick_candidates_then_handoff():
    history: list[PickAttempt] = []
    idx = 0
    decisions = []
    for failure in [F.VACUUM_NOT_REACHED, F.SUCTION_LOST, F.ITEM_SLIPPED, F.CONTACT_FORCE]:
        history.append(PickAttempt(idx, failure))
        d = next_pick_action(history, 3)
        decisions.append(d)
        if d.action is Action.HANDOFF:
            break
        idx = d.candidate_index
    assert [(d.action, d.candidate_index) for d in decisions] == [
        (Action.NEXT_CANDIDATE, 1),
        (Action.NEXT_CANDIDATE, 2),
        (Action.HANDOFF, None),
    ]
    assert "all 3 suction candidates tried" in decisions[-1].reason


def test_pick_target_not_found_hands_off():
    d = next_pick_action([PickAttempt(0, F.TARGET_NOT_FOUND)], 5)
    assert d.action is Action.HANDOFF and d.reason.startswith("target_not_found")


def test_pick_total_budget():
    hist = [PickAttempt(i, F.VACUUM_NOT_REACHED) for i in range(2)]
    d = next_pick_action(hist, 10, RetryBudget(max_total_attempts=2))
    assert d.action is Action.HANDOFF and "total attempt budget" in d.reason


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: next_stow_action([], BINS), "non-empty"),
        (lambda: next_stow_action([StowAttempt("Z", 0, F.CONTACT_FORCE)], BINS), "unknown bin"),
        (lambda: next_stow_action([StowAttempt("A", 7, F.CONTACT_FORCE)], BINS), "out of range"),
        (lambda: next_stow_action([StowAttempt("A", 0, F.VACUUM_NOT_REACHED)], BINS), "does not apply to a stow"),
        (lambda: next_stow_action([StowAttempt("A", 0, F.CONTACT_FORCE)], [("A", 1), ("A", 2)]), "duplicate"),
        (lambda: next_pick_action([PickAttempt(0, F.EJECT_FAILED)], 2), "does not apply to a pick"),
        (lambda: next_pick_action([PickAttempt(3, F.SUCTION_LOST)], 2), "out of range"),
        (lambda: StowAttempt("A", -1, F.CONTACT_FORCE), "placement_index"),
        (lambda: StowAttempt("A", 0, "contact_force"), "FailureKind"),
        (lambda: PickAttempt(True, F.SUCTION_LOST), "candidate_index"),
        (lambda: RetryBudget(max_total_attempts=0), "max_total_attempts"),
    ],
)
def test_validation(call, match):
    with pytest.raises(PlanningError, match=match):
        call()
