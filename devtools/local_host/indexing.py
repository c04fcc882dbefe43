"""Function indexing: what the Python worker and the host learn from a ``FunctionApp``.

The metadata comes from the azure-functions library itself (``app.get_functions()``,
``fn.get_function_json()``, ``fn.get_user_function()``) — there is no second registry. Parameter
checks follow the Python worker's ``FunctionInfo`` rules, so an app that fails to index on Azure
fails here too (for example ``func.Out[list[str]]``, which the worker rejects; use
``func.Out[typing.List[str]]``).
"""
from __future__ import annotations

import importlib
import inspect
import json
import logging
import operator
import os
import re
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import azure.functions as func
from azure.functions._thirdparty import typing_inspect

from devtools.local_host.settings import AppSettings, SettingNotFound

logger = logging.getLogger(__name__)

HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER = "httpTrigger", "queueTrigger", "timerTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, QUEUE_TRIGGER, TIMER_TRIGGER)
SUPPORTED_OUTPUTS = ("http", "queue")
# Binding attributes that take %SETTING% expressions (the host's [AutoResolve] / name resolver).
RESOLVED_ATTRIBUTES = ("queueName", "schedule")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


class FunctionLoadError(RuntimeError):
    def __init__(self, function_name: str, message: str):
        super().__init__(f"cannot load the {function_name} function: {message}")
        self.function_name = function_name


@dataclass(frozen=True)
class ParamBinding:
    """One Python parameter bound to a binding: how the worker converts its value."""

    name: str
    binding: dict[str, Any]
    bind_type: str  # converter key: the binding type, or "generic" for str/bytes annotations
    pytype: Any
    is_out: bool


@dataclass(frozen=True)
class IndexedFunction:
    name: str
    func: Callable[..., Any]
    is_async: bool
    directory: str
    trigger: dict[str, Any]  # the trigger binding, %SETTING% expressions resolved
    trigger_param: ParamBinding
    outputs: tuple[ParamBinding, ...] = ()
    return_binding: dict[str, Any] | None = None
    return_pytype: Any = None
    requires_context: bool = False
    bindings: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]

    def binding_for(self, name: str) -> dict[str, Any]:
        return next(b for b in self.bindings if b["name"] == name)


def load_app(spec: str) -> func.FunctionApp:
    """Import ``module:attribute`` (the current directory is importable, as under Core Tools)."""
    module_name, _, attribute = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    app = getattr(importlib.import_module(module_name), attribute or "app")
    if not hasattr(app, "get_functions"):
        raise TypeError(f"{spec} is not an azure.functions.FunctionApp")
    return app


def _out_inner_type(annotation: Any) -> tuple[bool, Any]:
    """(is func.Out[...], the type inside); mirrors the worker's annotation inspection."""
    if typing_inspect.is_generic_type(annotation):
        origin = typing_inspect.get_origin(annotation)
        is_out = isinstance(origin, type) and origin.__name__ == "Out"
    else:
        is_out = isinstance(annotation, type) and annotation.__name__ == "Out"
    if not is_out:
        return False, annotation
    args = typing_inspect.get_args(annotation)
    if len(args) != 1:
        raise ValueError(f"invalid Out annotation {annotation!r}")
    inner = args[0]
    if isinstance(inner, tuple) and typing_inspect.is_generic_type(inner[0]):
        inner = operator.getitem(inner[0], *inner[1:])
    return True, inner


def _check_param(fn_name: str, param: str, binding: dict[str, Any], annotations: dict) -> ParamBinding:
    registry = func.get_binding_registry()
    is_binding_out = binding["direction"] == "OUT"
    has_anno = param in annotations
    anno = annotations.get(param)
    try:
        is_out, pytype = _out_inner_type(anno) if has_anno else (False, None)
    except ValueError as exc:
        raise FunctionLoadError(fn_name, f"binding {param} has {exc}") from None
    if has_anno and not isinstance(pytype, type) and not typing_inspect.is_generic_type(pytype):
        raise FunctionLoadError(fn_name, f"binding {param} has invalid non-type annotation {anno!r}"
                                + (" (the Python worker rejects builtin generics here: use typing.List)"
                                   if typing.get_origin(pytype) is not None else ""))
    if is_binding_out and has_anno and not is_out:
        raise FunctionLoadError(fn_name, f'binding {param} is declared to have the "out" direction, but '
                                         "its annotation in Python is not a subclass of azure.functions.Out")
    if not is_binding_out and is_out:
        raise FunctionLoadError(fn_name, f'binding {param} is declared to have the "in" direction, but its '
                                         "annotation is azure.functions.Out in Python")
    bind_type = "generic" if has_anno and pytype in (str, bytes) else binding["type"]
    if has_anno:
        converter = registry.get(bind_type) if bind_type != "generic" else None
        if bind_type == "generic":
            ok = issubclass(pytype, (str, bytes, bytearray))
        elif converter is None:
            ok = False
        elif is_out:
            ok = converter.check_output_type_annotation(pytype)
        else:
            ok = converter.check_input_type_annotation(pytype)
        if not ok:
            raise FunctionLoadError(fn_name, f'type of {param} binding in function.json "{binding["type"]}" '
                                             f'does not match its Python annotation "{getattr(pytype, "__name__", pytype)}"')
    return ParamBinding(param, binding, bind_type, pytype, is_binding_out)


def _resolve(fn_name: str, binding: dict[str, Any], settings: AppSettings) -> dict[str, Any]:
    resolved = dict(binding)
    for attribute in RESOLVED_ATTRIBUTES:
        if isinstance(resolved.get(attribute), str):
            try:
                resolved[attribute] = settings.resolve(resolved[attribute])
            except SettingNotFound as exc:
                raise FunctionLoadError(fn_name, f"{attribute}: {exc}") from None
    if binding["type"] in (QUEUE_TRIGGER, "queue"):
        name = resolved["queueName"].lower()
        if not _QUEUE_NAME.match(name):
            raise FunctionLoadError(fn_name, f"invalid queue name {resolved['queueName']!r}: 3-63 lowercase "
                                             "letters, digits and single hyphens")
        resolved["queueName"] = name
        resolved["connection"] = resolved.get("connection") or "AzureWebJobsStorage"
    return resolved


def index_function(fn: Any, settings: AppSettings, directory: str) -> IndexedFunction:
    """Index one ``azure.functions`` ``Function``.

    :raises FunctionLoadError: when the worker or the host would refuse the function.
    """
    name = fn.get_function_name()
    bindings = [_normalise(b) for b in json.loads(fn.get_function_json())["bindings"]]
    trigger_name = fn.get_trigger().name
    user_func = fn.get_user_function()
    for b in bindings:
        if b["direction"] == "INOUT":
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        supported = SUPPORTED_TRIGGERS if b["name"] == trigger_name else SUPPORTED_OUTPUTS
        if b["type"] not in supported:
            raise FunctionLoadError(name, f"binding type {b['type']!r} is not supported by the local host")
    bindings = [_resolve(name, b, settings) for b in bindings]

    params = dict(inspect.signature(user_func).parameters)
    annotations = typing.get_type_hints(user_func)
    bound = {b["name"]: b for b in bindings if b["name"] != "$return"}
    requires_context = "context" in params and "context" not in bound
    if requires_context:
        params.pop("context")
    if set(params) - set(bound):
        raise FunctionLoadError(name, "the following parameters are declared in Python but not in "
                                      f"function.json: {set(params) - set(bound)!r}")
    if set(bound) - set(params):
        raise FunctionLoadError(name, "the following parameters are declared in function.json but not in "
                                      f"Python: {set(bound) - set(params)!r}")
    checked = {p: _check_param(name, p, bound[p], annotations) for p in params}
    return_binding = next((b for b in bindings if b["name"] == "$return"), None)
    return_pytype = annotations.get("return") if return_binding else None
    if return_binding and return_pytype is not None:
        converter = func.get_binding_registry().get(return_binding["type"])
        if not isinstance(return_pytype, type) or not converter.check_output_type_annotation(return_pytype):
            raise FunctionLoadError(name, f'Python return annotation "{return_pytype!r}" does not match binding '
                                          f'type "{return_binding["type"]}"')
    return IndexedFunction(
        name=name, func=user_func, is_async=inspect.iscoroutinefunction(user_func), directory=directory,
        trigger=bound[trigger_name], trigger_param=checked[trigger_name],
        outputs=tuple(p for p in checked.values() if p.is_out),
        return_binding=return_binding, return_pytype=return_pytype,
        requires_context=requires_context, bindings=tuple(bindings))


def _normalise(binding: dict[str, Any]) -> dict[str, Any]:
    """function.json as the host reads it: direction as IN/OUT/INOUT, no null attributes."""
    out = {k: v for k, v in binding.items() if v is not None}
    out["direction"] = str(out.get("direction", "IN")).upper()
    return out


def functions_of(app: Any) -> list:
    """``app.get_functions()``. The library remembers the names it has validated, so a second
    call on the same app (a second host in one test session) would report every function as a
    duplicate; forgetting them first keeps the check meaningful within this call."""
    if getattr(app, "functions_bindings", None):
        app.functions_bindings = None
    return app.get_functions()


def index_app(app: Any, settings: AppSettings, *, only: tuple[str, ...] | None = None,
              directory: str | None = None) -> tuple[list[IndexedFunction], dict[str, str]]:
    """Index every function of ``app``.

    :param only: host.json ``functions``: load just these names.
    :return: the loaded functions and, by name, why each other function was not loaded.
    """
    directory = directory or os.getcwd()
    loaded: list[IndexedFunction] = []
    errors: dict[str, str] = {}
    for fn in functions_of(app):
        name = fn.get_function_name()
        if only is not None and name not in only:
            continue
        if settings.is_disabled(name):
            logger.info("Function '%s' is disabled (AzureWebJobs.%s.Disabled)", name, name)
            continue
        try:
            loaded.append(index_function(fn, settings, directory))
        except FunctionLoadError as exc:
            errors[name] = str(exc)
            logger.error("%s", exc)
    return loaded, errors
