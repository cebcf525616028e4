"""When to restart a process the demo started: on failure, with exponential back-off, not forever.

The rule is systemd's `Restart=on-failure`: a process that ends with exit code 0 or by SIGTERM,
SIGINT, SIGHUP or SIGPIPE was stopped on purpose and stays stopped; any other end (a non-zero
exit code, SIGKILL, a crash) is a failure and the process is started again after a delay that
doubles with each failure in a row (1 s, 2 s, 4 s … up to `max_delay`). A failure after the
process ran for `stable_after` seconds starts the count afresh; at the `max_quick_failures`th
failure in a row, each soon after its start, the supervisor gives up on that process.

References: systemd.service(5), Restart= and SuccessExitStatus=.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

__all__ = [
    "Decision",
    "GiveUp",
    "LeaveStopped",
    "Restart",
    "RestartPolicy",
    "decide",
    "describe_exit",
    "is_clean_exit",
]

_CLEAN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE})


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How quickly to restart, and when to stop trying."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 30.0
    max_quick_failures: int = 5

    def __post_init__(self) -> None:
        if not (0 < self.first_delay <= self.max_delay):
            raise ValueError("need 0 < first_delay <= max_delay")
        if self.max_quick_failures < 1 or self.stable_after <= 0:
            raise ValueError("need max_quick_failures >= 1 and stable_after > 0")


@dataclass(frozen=True, slots=True)
class Restart:
    """Start the process again after `delay` seconds; `failures` in a row so far."""

    delay: float
    failures: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The process failed `failures` times in a row, each soon after it started."""

    failures: int


@dataclass(frozen=True, slots=True)
class LeaveStopped:
    """The process was stopped on purpose."""


Decision = Restart | GiveUp | LeaveStopped


def is_clean_exit(returncode: int) -> bool:
    """Exit code 0, or ended by a signal that asks a service to stop (Popen: -signum)."""
    return returncode == 0 or (returncode < 0 and -returncode in _CLEAN_SIGNALS)


def decide(
    policy: RestartPolicy, *, returncode: int, ran_for: float, failures_before: int
) -> Decision:
    """What to do about a process that ended with `returncode` after `ran_for` seconds."""
    if is_clean_exit(returncode):
        return LeaveStopped()
    failures = 1 if ran_for >= policy.stable_after else failures_before + 1
    if failures >= policy.max_quick_failures:
        return GiveUp(failures)
    return Restart(min(policy.first_delay * 2 ** (failures - 1), policy.max_delay), failures)


def describe_exit(returncode: int) -> str:
    """'exit code 3' or 'killed by SIGKILL'."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"
