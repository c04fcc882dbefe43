"""One function call the way the Python worker makes it: decoded arguments in, encoded outputs out.

Shared by the host process (:mod:`devtools.local_host.invocation`) and the worker processes
(:mod:`devtools.local_host.workers`), so that the workers need not import the host's invocation
module. Trigger values reach the function through the azure-functions library's own converters
(``func.get_binding_registry()``: ``Datum`` in, ``Datum`` out), and outputs are encoded exactly as
the worker encodes them before the host acts on them.
"""
from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, Mapping

import azure.functions as func
from azure.functions import _abc as azf_abc
from azure.functions.meta import Datum

from devtools.local_host.indexing import IndexedFunction, ParamBinding


class Out(func.Out):
    """The worker's ``Out``: holds what the function sets until the invocation completes."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


class TraceContext(azf_abc.TraceContext):
    def __init__(self, trace_parent: str, trace_state: str = "", attributes: dict | None = None):
        self._parent, self._state, self._attributes = trace_parent, trace_state, attributes or {}

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def trace_state(self) -> str:
        return self._state

    @property
    def attributes(self) -> dict:
        return self._attributes


class RetryContext(azf_abc.RetryContext):
    """No retry policies locally: always the first try."""

    retry_count = 0
    max_retry_count = 0
    exception = None


class Context(func.Context):
    def __init__(self, invocation_id: str, function_name: str, function_directory: str,
                 trace_context: TraceContext):
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = trace_context
        self._thread_local_storage = threading.local()
        self._thread_local_storage.invocation_id = invocation_id

    invocation_id = property(lambda self: self._invocation_id)
    function_name = property(lambda self: self._function_name)
    function_directory = property(lambda self: self._function_directory)
    trace_context = property(lambda self: self._trace_context)
    thread_local_storage = property(lambda self: self._thread_local_storage)
    retry_context = property(lambda self: RetryContext())


def _new_trace_parent() -> str:
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"


def decode_input(param: ParamBinding, datum: Datum, metadata: Mapping[str, Datum] | None) -> Any:
    """The worker's ``from_incoming_proto``: str/bytes annotations get the raw value."""
    if param.bind_type == "generic":
        return datum.value
    converter = func.get_binding_registry().get(param.bind_type)
    return converter.decode(datum, trigger_metadata=metadata)


def encode_output(bind_type: str, value: Any, pytype: Any) -> Datum:
    """The worker's ``get_datum``: a value the converter cannot encode fails the invocation."""
    if bind_type == "generic":
        if isinstance(value, str):
            return Datum(value, "string")
        if isinstance(value, (bytes, bytearray)):
            return Datum(bytes(value), "bytes")
    else:
        converter = func.get_binding_registry().get(bind_type)
        try:
            return converter.encode(value, expected_type=pytype)
        except NotImplementedError:
            pass
    raise TypeError(f'unable to encode outgoing TypedData: unsupported type "{bind_type}" '
                    f'for Python type "{type(value).__name__}"')


def encoded_outputs(fn: IndexedFunction, outs: Mapping[str, Out], result: Any) -> list[tuple[dict[str, Any], Datum]]:
    """What the worker sends back: each output binding that was set, and ``$return``, encoded."""
    if result is not None and fn.return_binding is None:
        raise RuntimeError(f"function {fn.name!r} without a $return binding returned a non-None value")
    outputs = [(p.binding, encode_output(p.bind_type, outs[p.name].get(), p.pytype))
               for p in fn.outputs if outs[p.name].get() is not None]
    if fn.return_binding is not None:
        outputs.append((fn.return_binding, encode_output(fn.return_binding["type"], result, fn.return_pytype)))
    return outputs


def arguments(fn: IndexedFunction, invocation_id: str, datum: Datum, metadata: Mapping[str, Datum] | None
              ) -> tuple[dict[str, Any], dict[str, Out], Context]:
    """The function's keyword arguments (trigger value decoded, an ``Out`` per output, context)."""
    kwargs: dict[str, Any] = {fn.trigger_param.name: decode_input(fn.trigger_param, datum, metadata)}
    outs = {p.name: Out() for p in fn.outputs}
    kwargs.update(outs)
    context = Context(invocation_id, fn.name, fn.directory, TraceContext(_new_trace_parent()))
    if fn.requires_context:
        kwargs["context"] = context
    return kwargs, outs, context


def call_with_thread_local(context: Context, function: Callable[..., Any], kwargs: dict) -> Any:
    """Call ``function`` with the invocation id in the context's thread-local storage, as the worker does."""
    context.thread_local_storage.invocation_id = context.invocation_id
    return function(**kwargs)
