"""The timeout of a backend that runs in the pytest process: the same `timeout_s` an isolated backend gets.

SIGALRM interrupts Python code that loops or sleeps; native code that never returns to Python is out of its reach,
which is why every backend with native code runs isolated (harness/engine/isolation.py) and only pure-Python backends
declare `isolated = False`.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class BackendTimeout(BaseException):
    """BaseException: a backend's own `except Exception` must not swallow its deadline."""


@contextmanager
def deadline(seconds: float, what: str):
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise BackendTimeout(f"{what}: no answer within {seconds:g} s; interrupted")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
