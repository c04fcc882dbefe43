"""Indexing: metadata from the azure-functions library, and the worker's load-time checks."""
from __future__ import annotations

import typing

import azure.functions as func
import pytest

from devtools.local_host.host_config import HostConfig, parse_timespan
from devtools.local_host.indexing import index_app
from devtools.local_host.settings import AppSettings, apply_to_environ, read_local_settings
from tests.host import sample_app


def index(app, **settings):
    return index_app(app, AppSettings({"Q": "work-items", **settings}, environ={}))


def test_the_sample_app_indexes_from_the_library_metadata():
    functions, errors = index(sample_app.app, WORK_QUEUE="w-q", OUT_QUEUE="o-q", TEXT_QUEUE="t-q",
                              TICK_SCHEDULE="* * * * * *")
    assert errors == {}
    by_name = {fn.name: fn for fn in functions}
    work = by_name["work"]
    assert (work.trigger_type, work.trigger["queueName"], work.trigger["connection"]) == \
        ("queueTrigger", "w-q", "AzureWebJobsStorage")
    assert [(o.name, o.bind_type, o.binding["queueName"]) for o in work.outputs] == [("out", "generic", "o-q")]
    assert by_name["tick"].trigger["schedule"] == "* * * * * *"
    assert by_name["secure_default"].trigger["authLevel"] == "FUNCTION"  # the app's default
    assert by_name["with_context"].requires_context
    assert by_name["slow_async"].is_async and not by_name["slow_sync"].is_async
    assert by_name["text_message"].trigger_param.bind_type == "generic"  # str annotation


def _app(register) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    register(app)
    return app


def test_out_of_builtin_list_is_refused_like_the_python_worker():
    def register(app):
        @app.route(route="r")
        @app.queue_output(arg_name="out", queue_name="%Q%", connection="AzureWebJobsStorage")
        def modern(req: func.HttpRequest, out: func.Out[list[str]]) -> func.HttpResponse: ...

        @app.route(route="s")
        @app.queue_output(arg_name="out", queue_name="%Q%", connection="AzureWebJobsStorage")
        def classic(req: func.HttpRequest, out: func.Out[typing.List[str]]) -> func.HttpResponse: ...

    functions, errors = index(_app(register))
    assert [fn.name for fn in functions] == ["classic"]
    assert "typing.List" in errors["modern"]


@pytest.mark.parametrize("define, message", [
    (lambda app: app.queue_trigger(arg_name="msg", queue_name="%Q%", connection="AzureWebJobsStorage")(
        lambda msg, extra: None), "declared in Python but not in function.json"),
    (lambda app: app.queue_trigger(arg_name="msg", queue_name="%Q%", connection="AzureWebJobsStorage")(
        lambda: None), "declared in function.json but not in Python"),
    (lambda app: app.queue_trigger(arg_name="msg", queue_name="%MISSING%", connection="AzureWebJobsStorage")(
        lambda msg: None), "'%MISSING%' does not resolve"),
    (lambda app: app.queue_trigger(arg_name="msg", queue_name="Bad_Name", connection="AzureWebJobsStorage")(
        lambda msg: None), "invalid queue name"),
    (lambda app: app.blob_trigger(arg_name="blob", path="c/{name}", connection="AzureWebJobsStorage")(
        lambda blob: None), "not supported by the local host"),
])
def test_functions_the_host_or_worker_would_refuse_are_in_error(define, message):
    functions, errors = index(_app(define))
    assert functions == []
    [error] = errors.values()
    assert message in error


def test_a_trigger_annotation_that_does_not_match_the_binding_is_refused():
    def register(app):
        @app.queue_trigger(arg_name="msg", queue_name="%Q%", connection="AzureWebJobsStorage")
        def wrong(msg: func.HttpRequest) -> None: ...

    assert "does not match its Python annotation" in index(_app(register))[1]["wrong"]


def test_disabled_setting_and_host_json_function_list():
    def register(app):
        for name in ("one", "two", "three"):
            app.function_name(name)(app.route(route=name)(lambda req: None))

    app = _app(register)
    names = [fn.name for fn in index_app(app, AppSettings({"AzureWebJobs.two.Disabled": "true"}, environ={}))[0]]
    assert names == ["one", "three"]
    names = [fn.name for fn in index_app(app, AppSettings({}, environ={}), only=("three",))[0]]
    assert names == ["three"]


def test_host_json_defaults_and_timespans():
    config = HostConfig.from_dict({"extensions": {"queues": {"batchSize": 8, "visibilityTimeout": "00:00:30"}}})
    assert config.route_prefix == "api"
    assert (config.queues.batch_size, config.queues.effective_new_batch_threshold) == (8, 4)
    assert (config.queues.visibility_timeout, config.queues.max_dequeue_count) == (30.0, 5)
    assert config.queues.max_polling_interval == 60.0 and config.queues.message_encoding == "base64"
    assert parse_timespan("1.02:03:04.5") == 86400 + 7384.5
    with pytest.raises(ValueError):
        parse_timespan("5 minutes")
    with pytest.raises(ValueError):
        HostConfig.from_dict({"extensions": {"queues": {"batchSize": 64}}})


def test_the_project_host_json_is_understood():
    config = HostConfig.from_file("host.json")
    assert (config.queues.batch_size, config.queues.new_batch_threshold, config.queues.max_dequeue_count) == \
        (8, 4, 5)
    assert config.queues.visibility_timeout == 5.0 and config.queues.max_polling_interval == 2.0


def test_local_settings_fall_back_to_the_sample_and_the_environment_wins(tmp_path, caplog):
    (tmp_path / "local.settings.sample.json").write_text(
        '{"IsEncrypted": false, "Values": {"A": "sample", "B": "sample", "N": 3}, "Host": {"LocalHttpPort": 7999}}')
    local = read_local_settings(tmp_path / "local.settings.json")
    assert "local.settings.sample.json" in caplog.text
    assert local.values == {"A": "sample", "B": "sample", "N": "3"} and local.local_http_port == 7999
    environ = {"B": "env"}
    assert apply_to_environ(local.values, environ) == {"A": "sample", "B": "env", "N": "3"}
    assert read_local_settings(tmp_path / "missing" / "local.settings.json").values == {}
