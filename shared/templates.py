"""Alert templates in a budget (A7): what a tenant's template may do, checked when the flow
is saved, and limits that hold while it renders.

At save, `{% include %}`, `{% import %}`, `{% from %}`, `{% extends %}` and the `|safe`
filter are refused, naming the tag: templates are self-contained, and `|safe` would let
a profile's values into the HTML unescaped.

While rendering, a sandbox intercepts the operators that build big values from small
source (`**`, `*`, `%`, `str.format`, padding widths) and refuses results
over the budget; output is capped at `MAX_OUTPUT_CHARS`; and a render runs on a worker
thread with a time limit, so a template that loops for minutes neither holds the event
loop (health probes, other tenants' alerts) nor the thread: the thread is interrupted.
An over-budget render raises `TemplateBudgetExceeded` with the reason, which the caller
records as the alert's failed outcome.
"""

from __future__ import annotations

import asyncio
import ctypes
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from jinja2 import ChainableUndefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

T = TypeVar("T")

MAX_OUTPUT_CHARS = 256 * 1024
MAX_POWER_BITS = 4096  # results of ** up to ~1,200 digits
MAX_RENDER_SECONDS = 2.0
_WIDTH = re.compile(r"%[-+ #0]*(\d+|\*)|\{[^{}]*:[^{}]*?(\d{4,})[^{}]*\}")
MAX_WIDTH = 1000

REFUSED_NODES: dict[type[nodes.Node], str] = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Extends: "extends",
}
REFUSED_FILTERS = {"safe": "|safe"}


class TemplateBudgetExceeded(RuntimeError):
    """A template needed more output, time or arithmetic than an alert may use."""


def refused_tags(env: Any, source: str) -> list[str]:
    """The tags and filters in `source` a saved template may not use (A7), each once.
    A source that does not parse has none here (its syntax error is reported instead)."""
    try:
        tree = env.parse(source)
    except Exception:
        return []
    found: dict[str, None] = {}
    for node_type, name in REFUSED_NODES.items():
        if any(True for _ in tree.find_all(node_type)):
            found.setdefault(name, None)
    for node in tree.find_all(nodes.Filter):
        if node.name in REFUSED_FILTERS:
            found.setdefault(REFUSED_FILTERS[node.name], None)
    # Constant arithmetic is judged now, so the bomb in `{{ 10**10000000 }}` fails the
    # save instead of every send.
    for node in tree.find_all((nodes.Pow, nodes.Mul)):
        left, right = node.left, node.right
        if isinstance(left, nodes.Const) and isinstance(right, nodes.Const):
            try:
                if isinstance(node, nodes.Pow):
                    _check_power(left.value, right.value)
                else:
                    _check_repeat(left.value, right.value)
            except TemplateBudgetExceeded as exc:
                found.setdefault(f"{'**' if isinstance(node, nodes.Pow) else '*'} ({exc})", None)
    return list(found)


def _check_width(fmt: Any) -> None:
    if isinstance(fmt, str):
        for m in _WIDTH.finditer(fmt):
            width = m.group(1) or m.group(2)
            if width == "*" or (width and int(width) > MAX_WIDTH):
                raise TemplateBudgetExceeded(f"a field width over {MAX_WIDTH} in a template")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | list | tuple) else 0


class BudgetSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus budgets on the operators that can blow up."""

    intercepted_binops = frozenset({"**", "*", "%"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(undefined=ChainableUndefined, **kwargs)
        center, indent, fmt = self.filters["center"], self.filters["indent"], self.filters["format"]

        def capped_center(value: Any, width: int = 80) -> Any:
            if isinstance(width, int) and width > MAX_WIDTH:
                raise TemplateBudgetExceeded(f"center width over {MAX_WIDTH}")
            return center(value, width)

        def capped_indent(value: Any, width: Any = 4, *args: Any, **kw: Any) -> Any:
            if (isinstance(width, int) and width > MAX_WIDTH) or _size(width) > MAX_WIDTH:
                raise TemplateBudgetExceeded(f"indent width over {MAX_WIDTH}")
            return indent(value, width, *args, **kw)

        def capped_format(value: Any, *args: Any, **kw: Any) -> Any:
            _check_width(value)
            return fmt(value, *args, **kw)

        self.filters.update(center=capped_center, indent=capped_indent, format=capped_format)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_repeat(left, right)
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_POWER_BITS
            ):
                raise TemplateBudgetExceeded("a product over the arithmetic budget")
        elif operator == "%":
            _check_width(left)
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # Built-in methods that allocate by a count: "x".ljust(10**8), "x".zfill(...).
        name = getattr(__obj, "__name__", "")
        if name in ("ljust", "rjust", "center", "zfill", "expandtabs") and any(
            isinstance(a, int) and a > MAX_WIDTH for a in args
        ):
            raise TemplateBudgetExceeded(f"{name} width over {MAX_WIDTH}")
        if name in ("format", "format_map"):  # "{:>99999999}".format(1)
            _check_width(getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None))
        return super().call(__context, __obj, *args, **kwargs)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if _size(seq) and isinstance(times, int) and _size(seq) * times > MAX_OUTPUT_CHARS:
            raise TemplateBudgetExceeded(
                f"repetition to {_size(seq) * times} items, over {MAX_OUTPUT_CHARS}"
            )


def _check_power(base: Any, exp: Any) -> None:
    if not isinstance(exp, int | float) or not isinstance(base, int | float):
        return
    if isinstance(base, float) or isinstance(exp, float):
        return  # floats overflow to an error, quickly
    if exp < 0 or abs(base) <= 1:
        return
    if base.bit_length() * exp > MAX_POWER_BITS:
        raise TemplateBudgetExceeded(
            f"{base} ** {exp} is over the arithmetic budget of {MAX_POWER_BITS} bits"
        )


def render_capped(template: Any, **context: Any) -> str:
    """Render with the output cap: stops as soon as the output is over budget."""
    out: list[str] = []
    size = 0
    for chunk in template.generate(**context):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise TemplateBudgetExceeded(f"output over {MAX_OUTPUT_CHARS} characters")
        out.append(chunk)
    return "".join(out)


# --- off the event loop, with a time limit ----------------------------------------------

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="template")
_deadlines: dict[int, float] = {}
_lock = threading.Lock()
_watching: threading.Thread | None = None


def _watchdog() -> None:
    """Interrupt every render past its deadline: TemplateBudgetExceeded is raised in its
    thread at the next bytecode, so a Python-level loop in a compiled template stops
    there (operators that could run long inside C are intercepted by the sandbox)."""
    while True:
        time.sleep(0.05)
        now = time.monotonic()
        with _lock:  # only threads still registered are interrupted (see _timed)
            for ident, at in list(_deadlines.items()):
                if at < now:
                    _deadlines[ident] = now + 0.5  # again, if it swallowed the first
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(ident), ctypes.py_object(TemplateBudgetExceeded)
                    )


def _timed(fn: Callable[[], T], limit_s: float) -> T:
    global _watching
    ident = threading.get_ident()
    with _lock:
        if _watching is None:
            _watching = threading.Thread(target=_watchdog, name="template-watchdog", daemon=True)
            _watching.start()
        _deadlines[ident] = time.monotonic() + limit_s
    try:
        return fn()
    except TemplateBudgetExceeded as exc:
        raise TemplateBudgetExceeded(str(exc) or f"rendering took over {limit_s:g} s") from None
    finally:
        # An interrupt sent just before the render finished may land here: keep going
        # until this thread is off the list, after which none is sent.
        while True:
            try:
                with _lock:
                    _deadlines.pop(ident, None)
                break
            except TemplateBudgetExceeded:
                continue


async def run_with_budget(fn: Callable[[], T], limit_s: float = MAX_RENDER_SECONDS) -> T:
    """Run `fn` (rendering) on a worker thread, interrupted after `limit_s` seconds."""
    return await asyncio.get_running_loop().run_in_executor(_pool, _timed, fn, limit_s)


async def run_each_with_budget(
    fns: Sequence[Callable[[], T]], limit_s: float = MAX_RENDER_SECONDS
) -> list[T | Exception]:
    """Run each of `fns` (a batch's renders) on a worker thread, in one hand-over for the
    batch, each interrupted after `limit_s` seconds of its own; a failing one gives its
    exception in its place and the others still run. Handing each render to the thread
    and back cost about 60 µs of CPU, more than rendering a short alert does."""
    if not fns:
        return []
    return await asyncio.get_running_loop().run_in_executor(_pool, _each, fns, limit_s)


def _each(fns: Sequence[Callable[[], T]], limit_s: float) -> list[T | Exception]:
    out: list[T | Exception] = []
    for fn in fns:
        try:
            out.append(_timed(fn, limit_s))
        except Exception as exc:
            out.append(exc)
    return out


def run_sync_with_budget(fn: Callable[[], T], limit_s: float = MAX_RENDER_SECONDS) -> T:
    """The same budget for a caller on its own thread (the save check, tests)."""
    return _timed(fn, limit_s)
