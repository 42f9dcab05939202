"""Read function metadata from a ``func.FunctionApp`` and invoke user functions the worker's way.

Indexing checks what the Python worker and the host would refuse at start (parameters
that match no binding) and what this host cannot serve (binding types other than
``httpTrigger`` with its ``$return`` http output, ``timerTrigger`` and ``queueTrigger``),
so a misconfigured app fails when the host starts, naming the function and the binding.
Invocation follows the worker: ``async def`` functions run on the event loop, plain
functions in a thread pool (``PYTHON_THREADPOOL_THREAD_COUNT`` threads, stdlib default).
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import inspect
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions._abc import RetryContext, TraceContext
from azure.functions.decorators.function_app import FunctionRegister

from devtools.host.config import HostConfigurationError

logger = logging.getLogger(__name__)

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
QUEUE_TRIGGER = "queueTrigger"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, TIMER_TRIGGER, QUEUE_TRIGGER)
CONTEXT_PARAMETER = "context"


def _plain(value: Any) -> Any:
    """Binding dicts hold enums (AuthLevel, HttpMethod, BindingDirection); turn them into strings."""
    if isinstance(value, enum.Enum):
        return value.name if isinstance(value.value, int) else str(value.value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


@dataclass(frozen=True)
class FunctionSpec:
    """One indexed function: its trigger binding (plain dict) and how to call it."""

    name: str
    trigger_type: str
    trigger: Mapping[str, Any]
    trigger_arg: str
    user_function: Callable[..., Any]
    is_async: bool
    wants_context: bool
    directory: str


def _direction(binding: Mapping[str, Any]) -> str:
    return str(binding.get("direction", "")).lower()


def _trigger(name: str, function: Any) -> dict[str, Any]:
    """The function's trigger binding; raises HostConfigurationError for none or one the host does not serve."""
    trigger_obj = function.get_trigger()
    if trigger_obj is None:
        raise HostConfigurationError(f"Function '{name}' has no trigger.")
    trigger: dict[str, Any] = _plain(trigger_obj.get_dict_repr())
    trigger_type = str(trigger.get("type"))
    if trigger_type not in SUPPORTED_TRIGGERS:
        raise HostConfigurationError(
            f"Function '{name}' uses the trigger type '{trigger_type}', which the local host does not "
            f"support (supported: {', '.join(SUPPORTED_TRIGGERS)})."
        )
    return trigger


def _check_bindings(name: str, function: Any, trigger: Mapping[str, Any]) -> None:
    """Besides the trigger, only an HTTP function's ``$return`` output is served."""
    trigger_type = str(trigger.get("type"))
    for binding in (_plain(b.get_dict_repr()) for b in function.get_bindings()):
        if binding.get("type") == trigger_type and binding.get("name") == trigger.get("name"):
            continue
        is_http_return = (
            trigger_type == HTTP_TRIGGER
            and binding.get("type") == "http"
            and _direction(binding) == "out"
            and binding.get("name") == "$return"
        )
        if not is_http_return:
            raise HostConfigurationError(
                f"Function '{name}' uses the binding type '{binding.get('type')}' "
                f"(name '{binding.get('name')}'), which the local host does not support."
            )


def _check_parameters(name: str, parameters: Mapping[str, inspect.Parameter], trigger_arg: str) -> None:
    unknown = [p for p in parameters if p not in (trigger_arg, CONTEXT_PARAMETER)]
    if unknown or trigger_arg not in parameters:
        raise HostConfigurationError(
            f"Function '{name}': the parameters {list(parameters)} do not match the bindings "
            f"(trigger '{trigger_arg}', optional '{CONTEXT_PARAMETER}')."
        )


def _disabled(name: str, settings: Mapping[str, str]) -> bool:
    disabled = settings.get(f"AzureWebJobs.{name}.Disabled", "").strip().lower() in ("true", "1")
    if disabled:
        logger.info("Function '%s' is disabled by its AzureWebJobs.%s.Disabled setting.", name, name)
    return disabled


def index_functions(function_app: FunctionRegister, *, settings: Mapping[str, str]) -> list[FunctionSpec]:
    """Every enabled function of the app.

    Raises HostConfigurationError for a binding type the host does not serve, or for
    parameters that match no binding. A function is skipped, as on the platform, when
    the setting ``AzureWebJobs.<name>.Disabled`` is "true" or "1".
    """
    specs: list[FunctionSpec] = []
    for function in function_app.get_functions():
        name = function.get_function_name() or function.get_user_function().__name__
        trigger = _trigger(name, function)
        _check_bindings(name, function, trigger)
        user_function = function.get_user_function()
        parameters = inspect.signature(user_function).parameters
        trigger_arg = str(trigger.get("name"))
        _check_parameters(name, parameters, trigger_arg)
        if _disabled(name, settings):
            continue
        specs.append(
            FunctionSpec(
                name=name,
                trigger_type=str(trigger.get("type")),
                trigger=trigger,
                trigger_arg=trigger_arg,
                user_function=user_function,
                is_async=inspect.iscoroutinefunction(user_function),
                wants_context=CONTEXT_PARAMETER in parameters,
                directory=_directory_of(user_function),
            )
        )
    return specs


def _directory_of(user_function: Callable[..., Any]) -> str:
    try:
        return os.path.dirname(os.path.abspath(inspect.getfile(user_function)))
    except TypeError:  # built in or generated: no source file
        return os.getcwd()


class _TraceContext(TraceContext):
    def __init__(self) -> None:
        self._trace_parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    """The ``context`` argument a function may declare, as the worker passes it."""

    _thread_local = threading.local()

    def __init__(self, *, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext()
        self._retry_context = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return self._retry_context


class Invoker:
    """Calls user functions; owns the thread pool that plain (sync) functions run in."""

    def __init__(self, *, max_workers: int | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="function")

    async def invoke(self, spec: FunctionSpec, trigger_value: Any, *, reason: str) -> Any:
        """Run one invocation and return what the function returned; its exception propagates."""
        context = InvocationContext(function_name=spec.name, function_directory=spec.directory)
        kwargs: dict[str, Any] = {spec.trigger_arg: trigger_value}
        if spec.wants_context:
            kwargs[CONTEXT_PARAMETER] = context
        logger.info(
            "Executing 'Functions.%s' (Reason='%s', Id=%s)",
            spec.name,
            reason,
            context.invocation_id,
        )
        started = time.perf_counter()
        try:
            if spec.is_async:
                result = await spec.user_function(**kwargs)
            else:
                loop = asyncio.get_running_loop()
                call = functools.partial(
                    contextvars.copy_context().run,
                    _call_in_thread,
                    spec,
                    context,
                    kwargs,
                )
                result = await loop.run_in_executor(self._executor, call)
        except BaseException:
            logger.info(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)",
                spec.name,
                context.invocation_id,
                (time.perf_counter() - started) * 1000,
            )
            raise
        logger.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            spec.name,
            context.invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def shutdown(self) -> None:
        # Threads still running a function cannot be interrupted; do not wait for them.
        self._executor.shutdown(wait=False, cancel_futures=True)


def _call_in_thread(spec: FunctionSpec, context: InvocationContext, kwargs: dict[str, Any]) -> Any:
    # The worker sets the invocation id in thread-local storage so logs from user threads can be correlated.
    context.thread_local_storage.invocation_id = context.invocation_id
    return spec.user_function(**kwargs)


async def stopped_within(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as ``stopping`` is set (pollers and timers sleep this way)."""
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
