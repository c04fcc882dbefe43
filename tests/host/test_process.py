"""``python -m devtools.local_host`` as a subprocess: settings, listing, queues, SIGTERM drain."""
from __future__ import annotations

import json
import threading

import requests

from devtools.azurite import free_port
from tests.fixtures.local_host import LOCAL_KEY, host_json
from tests.host.conftest import settings_of
from tests.waiting import wait_until

APP = "tests.host.sample_app:app"


def write_project(folder, *, values: dict, functions: list[str], settings_name="local.settings.json",
                  port: int | None = None, **queues) -> tuple:
    settings = {"IsEncrypted": False, "Values": values, "Host": {"LocalHttpPort": port or 7071}}
    (folder / settings_name).write_text(json.dumps(settings))
    (folder / "host.json").write_text(json.dumps(host_json(functions=functions, **queues)))
    return folder / "local.settings.json", folder / "host.json"


def test_cli_reads_local_settings_environment_wins_and_lists_functions(start_local_host_process, tmp_path):
    settings, host_file = write_project(
        tmp_path, values={"FILE_ONLY": "from-file", "BOTH": "from-file", "LOCAL_FUNCTION_KEY": "file-key"},
        functions=["setting", "secure_function", "work"])
    proc = start_local_host_process(APP, env={"BOTH": "from-env", "WORK_QUEUE": "cli-work", "OUT_QUEUE": "cli-out"},
                                    settings=settings, host_json=host_file)

    assert requests.get(f"{proc.url}/api/setting/FILE_ONLY").text == "from-file"
    assert requests.get(f"{proc.url}/api/setting/BOTH").text == "from-env"
    assert requests.get(f"{proc.url}/api/secure/function", params={"code": "file-key"}).status_code == 401
    assert requests.get(f"{proc.url}/api/secure/function", params={"code": LOCAL_KEY}).status_code == 200
    assert f"setting: [ANY] {proc.url}/api/setting/{{name}}" in proc.output
    assert "work: queueTrigger (queue 'cli-work')" in proc.output
    assert proc.stop() == 0
    assert "Local Functions host stopped" in proc.output


def test_cli_falls_back_to_the_sample_settings_and_their_port(start_local_host_process, tmp_path):
    port = free_port()
    write_project(tmp_path, values={"FILE_ONLY": "from-sample"}, functions=["setting"],
                  settings_name="local.settings.sample.json", port=port)
    proc = start_local_host_process(APP, settings=tmp_path / "local.settings.json",
                                    host_json=tmp_path / "host.json", port=None)

    assert proc.url == f"http://127.0.0.1:{port}"
    assert requests.get(f"{proc.url}/api/setting/FILE_ONLY").text == "from-sample"
    assert "local.settings.sample.json" in proc.output


def test_sigterm_drains_in_flight_work_and_exits_cleanly(start_local_host_process, tmp_path, queues, names):
    settings, host_file = write_project(tmp_path, values={}, functions=["work", "slow_sync"])
    proc = start_local_host_process(APP, env=settings_of(names), settings=settings, host_json=host_file,
                                    extra_args=["--log-level", "DEBUG"])  # for the 'Executing' line
    body = f"sleep:{names['tag']}:1"
    statuses = []
    caller = threading.Thread(target=lambda: statuses.append(
        requests.get(f"{proc.url}/api/sync-slow/1.5").status_code))
    caller.start()
    wait_until(lambda: "Executing 'Functions.slow_sync'" in proc.output)  # the request reached the host
    queues.send(names["WORK_QUEUE"], body)
    wait_until(lambda: not queues.raw(names["WORK_QUEUE"]))  # until it is fetched
    assert "Executed 'Functions.work'" not in proc.output  # still running

    assert proc.stop() == 0
    caller.join()
    assert statuses == [200]  # the in-flight request was answered
    assert "Executed 'Functions.work' (Succeeded" in proc.output
    assert queues.total(names["WORK_QUEUE"]) == 0  # processed and deleted before exit
    assert queues.texts(names["OUT_QUEUE"]) == [f"done:{body}"]
