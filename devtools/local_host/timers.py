"""Timer trigger: 6-field NCRONTAB (or TimeSpan) schedules, as the Functions host runs them.

``{second} {minute} {hour} {day} {month} {day-of-week}`` is parsed by croniter with
``second_at_beginning=True``; a 5-field expression is refused, as Azure refuses it. A TimeSpan
(``hh:mm:ss``) runs at that interval. Times are UTC unless ``WEBSITE_TIME_ZONE`` names an IANA zone.
Invocations of one timer never overlap: the next occurrence is computed after the previous
invocation finished, and occurrences missed meanwhile are skipped (the next one reports
``past_due``). ``use_monitor`` (schedule status kept in storage) is not reproduced.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from azure.functions.meta import Datum
from croniter import croniter

from devtools.local_host.host_config import parse_timespan
from devtools.local_host.indexing import IndexedFunction
from devtools.local_host.invocation import InvocationRecord
from devtools.local_host.settings import AppSettings

logger = logging.getLogger(__name__)


class ScheduleError(ValueError):
    """Not a 6-field NCRONTAB expression nor a TimeSpan."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    tz: tzinfo = timezone.utc

    @classmethod
    def parse(cls, expression: str, tz: tzinfo = timezone.utc) -> "Schedule":
        expression = expression.strip()
        if ":" in expression:
            try:
                if parse_timespan(expression) <= 0:
                    raise ScheduleError(f"a TimeSpan schedule must be positive: {expression!r}")
            except ValueError as exc:
                raise ScheduleError(str(exc)) from None
        elif len(expression.split()) != 6 or not croniter.is_valid(expression, second_at_beginning=True):
            raise ScheduleError(f"The schedule expression '{expression}' was not recognized as a valid cron "
                                "expression or timespan string (NCRONTAB has 6 fields: second minute hour "
                                "day month day-of-week)")
        return cls(expression, tz)

    def next_after(self, moment: datetime) -> datetime:
        if ":" in self.expression:
            return moment + timedelta(seconds=parse_timespan(self.expression))
        return croniter(self.expression, moment.astimezone(self.tz),
                        second_at_beginning=True).get_next(datetime)

    def previous_before(self, moment: datetime) -> datetime:
        if ":" in self.expression:
            return moment - timedelta(seconds=parse_timespan(self.expression))
        return croniter(self.expression, moment.astimezone(self.tz),
                        second_at_beginning=True).get_prev(datetime)


def schedule_for(fn: IndexedFunction, settings: AppSettings) -> Schedule:
    zone = settings.get("WEBSITE_TIME_ZONE")
    return Schedule.parse(fn.trigger["schedule"], ZoneInfo(zone) if zone else timezone.utc)


def timer_datum(schedule: Schedule, *, last: datetime | None, next_: datetime, past_due: bool) -> Datum:
    """The JSON the host sends for a ``func.TimerRequest``."""
    now = datetime.now(timezone.utc)
    status = {"Last": (last or now).isoformat(), "Next": next_.isoformat(), "LastUpdated": now.isoformat()}
    return Datum(json.dumps({"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status,
                             "IsPastDue": past_due}), "json")


class TimerListener:
    """Fires one timer-triggered function on its schedule (and once at start with run_on_startup)."""

    def __init__(self, fn: IndexedFunction, schedule: Schedule,
                 invoke: Callable[..., Awaitable[InvocationRecord]],
                 spawn: Callable[[Awaitable], asyncio.Task]):
        self.fn, self.schedule = fn, schedule
        self._invoke, self._spawn = invoke, spawn

    async def run(self) -> None:
        last: datetime | None = None
        if self.fn.trigger.get("runOnStartup"):
            now = datetime.now(timezone.utc)
            await self._fire(last=None, next_=self.schedule.next_after(now), past_due=False,
                             reason="Timer fired at startup (runOnStartup)")
        while True:
            now = datetime.now(timezone.utc)
            due = self.schedule.next_after(now if last is None else max(now, last))
            await asyncio.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()))
            fired = datetime.now(timezone.utc)
            following = self.schedule.next_after(due)
            await self._fire(last=last, next_=following, past_due=fired >= following,
                             reason=f"Timer fired at {fired.isoformat()}")
            last = due

    async def _fire(self, *, last: datetime | None, next_: datetime, past_due: bool, reason: str) -> None:
        # The invocation is its own task: stopping the listener must not cancel it (graceful stop).
        task = self._spawn(self._invoke(self.fn, timer_datum(self.schedule, last=last, next_=next_,
                                                             past_due=past_due), reason=reason))
        await asyncio.wait({task})
