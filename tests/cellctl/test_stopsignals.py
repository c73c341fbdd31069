"""Who sent a stop signal decides whether a second one aborts (`cellctl.runtime.signals`), and the entry point
finds the verb that needs its own signal listener."""

from __future__ import annotations

import signal

from cellctl.entry import verb
from cellctl.runtime.signals import SI_KERNEL, StopPolicy, StopSignal


def term(t: float, pid: int = 4242) -> StopSignal:
    return StopSignal(signal.SIGTERM, 0, pid, t)  # kill(): SI_USER


def ctrl_c(t: float) -> StopSignal:
    return StopSignal(signal.SIGINT, SI_KERNEL, 0, t)


def test_a_signal_to_the_child_and_its_group_is_one_stop() -> None:
    policy = StopPolicy(grace_s=1.0)
    assert policy.decide(term(10.0)) == "stop"
    assert policy.decide(term(10.0004)) == "ignore"  # timeout -s TERM: child, then its process group


def test_a_second_signal_after_the_grace_period_aborts() -> None:
    policy = StopPolicy(grace_s=1.0)
    assert policy.decide(term(10.0)) == "stop"
    assert policy.decide(term(10.5, pid=1)) == "ignore"
    assert policy.decide(term(11.2)) == "abort"


def test_a_terminals_second_ctrl_c_aborts_at_once() -> None:
    policy = StopPolicy(grace_s=1.0)
    assert policy.decide(ctrl_c(10.0)) == "stop"
    assert policy.decide(ctrl_c(10.2)) == "abort"


def test_a_signal_of_unknown_sender_within_the_grace_period_is_the_same_stop() -> None:
    policy = StopPolicy(grace_s=1.0)
    assert policy.decide(StopSignal(signal.SIGINT, -1, -1, 5.0)) == "stop"
    assert policy.decide(StopSignal(signal.SIGINT, -1, -1, 5.3)) == "ignore"


def test_the_entry_point_finds_the_verb() -> None:
    assert verb(["run", "--cycles", "3"]) == "run"
    assert verb(["--log-level", "debug", "run"]) == "run"
    assert verb(["--log-level", "run", "sim"]) == "sim"
    assert verb(["--version"]) is None
