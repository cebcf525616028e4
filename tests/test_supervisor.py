"""onerecord.supervisor: restart on failure with back-off, give up on repeated quick failures."""

from __future__ import annotations

import signal

import pytest

from onerecord.supervisor import (
    GiveUp,
    LeaveStopped,
    Restart,
    RestartPolicy,
    decide,
    describe_exit,
)

POLICY = RestartPolicy(first_delay=1, max_delay=8, stable_after=30, max_quick_failures=6)


@pytest.mark.parametrize(
    "returncode", [0, -signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP, -signal.SIGPIPE]
)
def test_a_process_stopped_on_purpose_stays_stopped(returncode: int) -> None:
    assert decide(POLICY, returncode=returncode, ran_for=1, failures_before=0) == LeaveStopped()


@pytest.mark.parametrize("returncode", [1, 3, 137, -signal.SIGKILL, -signal.SIGSEGV])
def test_a_failed_process_is_restarted(returncode: int) -> None:
    assert decide(POLICY, returncode=returncode, ran_for=100, failures_before=0) == Restart(1, 1)


def test_quick_failures_double_the_delay_up_to_the_cap_then_give_up() -> None:
    failures, delays = 0, []
    while True:
        decision = decide(POLICY, returncode=-9, ran_for=0.5, failures_before=failures)
        if isinstance(decision, GiveUp):
            break
        assert isinstance(decision, Restart)
        failures = decision.failures
        delays.append(decision.delay)
    assert delays == [1, 2, 4, 8, 8]
    assert decision == GiveUp(6)


def test_a_failure_after_a_stable_run_starts_the_count_afresh() -> None:
    assert decide(POLICY, returncode=1, ran_for=31, failures_before=5) == Restart(1, 1)


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(first_delay=0)
    with pytest.raises(ValueError):
        RestartPolicy(max_quick_failures=0)


def test_describe_exit() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
