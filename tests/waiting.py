"""The one polling helper for eventual assertions (cosmicpython's ``tests/e2e/...wait_for``).

``wait_until(condition)`` calls ``condition()`` every ``interval`` seconds until it holds, and returns
what it returned. It holds when it

* returns a truthy value (``wait_until(lambda: queues.raw(poison))`` returns the messages), or
* returns ``None`` without raising: a check written with ``assert`` that stopped failing.

``False``, ``0`` and empty collections mean "not yet", and so does an ``AssertionError`` or an
exception of a type in ``ignoring`` (e.g. ``requests.ConnectionError`` while a port is closed).
Any other exception ends the wait at once. After ``timeout`` seconds it raises ``AssertionError``
naming the condition, with the last value or the last assertion's message (chained), so a test that
waits in vain fails like an assertion, saying what it was waiting for.

A test that asserts that something does *not* happen waits for a positive event that proves the
system has gone past the point (the job completed, a later marker message arrived), never for a fixed
time.
"""
from __future__ import annotations

import inspect
import time
from typing import Callable, TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
DEFAULT_INTERVAL = 0.05


def _describe(condition: Callable) -> str:
    name = getattr(condition, "__qualname__", None) or repr(condition)
    if "<lambda>" in name:
        try:
            return inspect.getsource(condition).strip()
        except (OSError, TypeError):
            pass
    return name


def wait_until(condition: Callable[[], T], *, timeout: float = DEFAULT_TIMEOUT,
               interval: float = DEFAULT_INTERVAL, ignoring: tuple[type[BaseException], ...] = (),
               what: str | None = None) -> T:
    """Poll ``condition`` until it holds (see the module docstring); return its last value.

    :param timeout: seconds before giving up.
    :param interval: seconds between two calls.
    :param ignoring: exception types that mean "not yet", besides ``AssertionError``.
    :param what: what is awaited, for the timeout message (default: the condition's name or source).
    :raises AssertionError: when it still does not hold after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        try:
            value = condition()
        except (AssertionError, *ignoring) as exc:
            last, failure = None, exc
        else:
            if value is None or value:
                return value
            last, failure = value, None
        if time.monotonic() >= deadline:
            described = what or _describe(condition)
            if failure is not None:
                raise AssertionError(f"still failing after {timeout} s ({attempts} tries): {described}\n"
                                     f"last failure: {type(failure).__name__}: {failure}") from failure
            raise AssertionError(f"not true after {timeout} s ({attempts} tries): {described}\n"
                                 f"last value: {last!r}")
        time.sleep(interval)
