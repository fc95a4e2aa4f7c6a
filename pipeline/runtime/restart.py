"""When a supervised child that died is started again, and when the supervisor gives up.

Like systemd's ``Restart=on-failure``: a child that fails (a non-zero exit
code, or killed by a signal other than the ones that ask it to stop) is
started again after a delay that doubles with each failure in a row; a child
that fails again and again, each time soon after it started, is not: the
supervisor gives up loudly (systemd's start limit). A child that exits cleanly
(code 0, or stopped by SIGTERM, SIGINT or SIGHUP) was stopped on purpose and is
not restarted.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

#: Signals that ask a process to stop: a child they ended exited cleanly.
CLEAN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def failed(code: int) -> bool:
    """Whether a child that ended with *code* (``Popen.returncode``) failed."""
    return code != 0 and -code not in CLEAN_SIGNALS


def describe_exit(code: int) -> str:
    """How a child ended, in words."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


@dataclass(frozen=True)
class RestartPolicy:
    """How long to wait before a restart, and when to give up.

    Attributes:
        first_delay: seconds before the first restart after a failure.
        max_delay: the longest wait; each failure in a row doubles it up to this.
        fast: a failure within this many seconds of the child's start is fast.
        give_up_after: fast failures in a row after which the child is not
            started again.
    """

    first_delay: float = 1.0
    max_delay: float = 30.0
    fast: float = 10.0
    give_up_after: int = 5

    def delay(self, failures_in_a_row: int) -> float:
        """Seconds to wait before the restart that follows *failures_in_a_row* failures."""
        return float(min(self.first_delay * 2 ** max(failures_in_a_row - 1, 0), self.max_delay))

    def failures_after(self, previous: int, ran_for: float) -> int:
        """Fast failures in a row once a child that ran *ran_for* seconds failed again."""
        return previous + 1 if ran_for < self.fast else 1

    def gives_up(self, failures_in_a_row: int) -> bool:
        """Whether a child with that many fast failures in a row stays down."""
        return failures_in_a_row >= self.give_up_after
