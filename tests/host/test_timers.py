"""Timer triggers: NCRONTAB schedules, %SETTING% schedules, run_on_startup, the admin API."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import requests

from devtools.local_host.timers import Schedule, ScheduleError
from tests.fixtures.local_host import LOCAL_KEY, host_json
from tests.host import sample_app
from tests.host.conftest import settings_of

EVENTS = sample_app.EVENTS


def ticks_since(mark: float) -> list[dict]:
    return [e for e in EVENTS.of("tick") if e["at"] > mark]


def test_an_every_second_schedule_from_a_setting_fires_each_second(start_local_host, names):
    mark = time.monotonic()
    host = start_local_host(sample_app.app, settings=settings_of(names, TICK_SCHEDULE="* * * * * *"),
                            host_config=host_json(functions=["tick"]))
    records = host.invocations.wait_for("tick", 3, timeout=5)
    assert all(r.succeeded for r in records)
    ticks = ticks_since(mark)[:3]
    gaps = [b["at"] - a["at"] for a, b in zip(ticks, ticks[1:])]
    assert all(0.5 < gap < 1.5 for gap in gaps), gaps
    assert not any(t["past_due"] for t in ticks)
    status = ticks[-1]["status"]
    assert datetime.fromisoformat(status["Next"]) > datetime.fromisoformat(status["Last"])


def test_a_far_schedule_does_not_fire_but_the_admin_api_runs_it_now(start_local_host, names):
    host = start_local_host(sample_app.app, settings=settings_of(names), host_config=host_json(functions=["tick"]))
    url = f"{host.url}/admin/functions/tick"
    assert requests.post(url, json={"input": ""}).status_code == 401
    assert requests.post(url, json={"input": ""}, headers={"x-functions-key": LOCAL_KEY}).status_code == 202
    [record] = host.invocations.wait_for("tick", timeout=5)
    assert record.succeeded and record.trigger == "timerTrigger"
    assert host.fire("tick").result(5).succeeded
    assert len(host.invocations.list("tick")) == 2  # the schedule itself (1 January) never fired


def test_run_on_startup_fires_once_at_start(start_local_host, names):
    host = start_local_host(sample_app.app, settings=settings_of(names, TICK_SCHEDULE="* * * * * *"),
                            host_config=host_json(functions=["on_startup", "tick"]))
    [record] = host.invocations.wait_for("on_startup", timeout=5)
    assert record.succeeded
    host.invocations.wait_for("tick", 2, timeout=5)  # the timers ran on for a second and more
    assert len(host.invocations.list("on_startup")) == 1


def test_an_unknown_setting_in_the_schedule_puts_the_function_in_error(start_local_host, names):
    settings = settings_of(names)
    del settings["TICK_SCHEDULE"]
    host = start_local_host(sample_app.app, settings=settings, host_config=host_json(functions=["tick", "text"]))
    assert "%TICK_SCHEDULE%" in host.function_errors["tick"]
    assert [fn.name for fn in host.functions] == ["text"]  # the rest of the app still runs


@pytest.mark.parametrize("schedule", ["0 2 * * *", "not a cron", "61 * * * * *"])
def test_invalid_schedules_are_refused(start_local_host, names, schedule):
    host = start_local_host(sample_app.app, settings=settings_of(names, TICK_SCHEDULE=schedule),
                            host_config=host_json(functions=["tick"]))
    assert "tick" in host.function_errors and host.functions == []


@pytest.mark.parametrize("expression, after, expected", [
    ("0 0 2 * * *", "2026-03-01T02:00:00+00:00", "2026-03-02T02:00:00+00:00"),
    ("0 30 9 * * Mon", "2026-03-04T00:00:00+00:00", "2026-03-09T09:30:00+00:00"),  # 4 March 2026: Wed
    ("*/15 * * * * *", "2026-03-01T00:00:07+00:00", "2026-03-01T00:00:15+00:00"),
    ("0 0 0 1 1 *", "2026-03-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("00:05:00", "2026-03-01T00:00:07+00:00", "2026-03-01T00:05:07+00:00"),  # TimeSpan
])
def test_ncrontab_six_fields_and_timespans(expression, after, expected):
    schedule = Schedule.parse(expression)
    assert schedule.next_after(datetime.fromisoformat(after)) == datetime.fromisoformat(expected)


def test_five_field_cron_is_not_ncrontab():
    with pytest.raises(ScheduleError):
        Schedule.parse("*/5 * * * *")


def test_time_zone_setting_moves_the_schedule():
    schedule = Schedule.parse("0 0 2 * * *", ZoneInfo("Europe/Berlin"))
    after = datetime(2026, 1, 10, 0, 0, tzinfo=timezone.utc)
    assert schedule.next_after(after) == datetime(2026, 1, 10, 1, 0, tzinfo=timezone.utc)  # 02:00 CET
