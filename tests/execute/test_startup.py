"""Ray's startup timeout: retried once, then one clear error (a busy 2-core machine can miss Ray's 30 s)."""

from __future__ import annotations

import pytest

from taskgraph.execute.cluster import StartupTimeout, start_with_retry

RAY_TIMEOUT = Exception(  # the text Ray 2.60 raises, a bare Exception, from ray/_private/node.py
    "The current node timed out during startup. This could happen because some of the raylet failed "
    "to startup or the GCS has become overloaded."
)


class Flaky:
    """Fails with Ray's startup timeout ``failures`` times, then starts."""

    def __init__(self, failures: int, error: Exception = RAY_TIMEOUT):
        self.failures, self.error = failures, error
        self.calls = self.cleanups = 0

    def start(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "started"

    def cleanup(self) -> None:
        self.cleanups += 1


def test_one_startup_timeout_is_retried_after_cleanup():
    flaky = Flaky(failures=1)
    assert start_with_retry(flaky.start, flaky.cleanup) == "started"
    assert (flaky.calls, flaky.cleanups) == (2, 1)


def test_repeated_startup_timeouts_end_in_one_clear_error():
    flaky = Flaky(failures=5)
    with pytest.raises(StartupTimeout) as caught:
        start_with_retry(flaky.start, flaky.cleanup, attempts=2)
    assert (flaky.calls, flaky.cleanups) == (2, 2)
    message = str(caught.value)
    assert "30 s" in message and "ray start --head" in message and "--address auto" in message
    assert "\n" not in message


def test_other_failures_pass_through_without_retry():
    flaky = Flaky(failures=1, error=ValueError("bad num_cpus"))
    with pytest.raises(ValueError, match="bad num_cpus"):
        start_with_retry(flaky.start, flaky.cleanup)
    assert (flaky.calls, flaky.cleanups) == (1, 0)

