"""The layout's rules, checked statically over the source tree (ast, no imports, no stack).

Each test names the rule it guards and, when it fails, lists every offending file, line
and function, so the message is the to-do list:

- a service talks to the others only through topics, so no service package imports
  another one;
- a domain (`services/*/domain/`, `shared/domain/`) is pure: no I/O library, no
  project module that does I/O, no `async def`; it is tested without a broker,
  database or SMTP server;
- SQL lives in the adapters (`services/*/adapters/`) and in `shared/db/`, where a
  reader of the schema finds all of it (tests, benchmarks and `.sql` migrations may
  hold SQL too);
- no function in `services/` is longer than 60 lines;
- `tools/` (the `consentflow` command, the demo, the contract generator) is not code
  the services share: neither `shared/` nor `services/` imports it;
- use cases (`services/*/handlers.py`, and the privacy use case the services share)
  reach the world only through their unit of work: they import no adapter, no
  `shared.db`, no `shared.messaging`, no FastStream, aiokafka or asyncpg (and neither
  does a domain);
- every service declares its Kafka subscribers and publishers in one module,
  `services/<name>/entrypoints/kafka.py`, and only there.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").is_file())
MAX_FUNCTION_LINES = 60

# Libraries (or their I/O modules) that reach a network, a disk, a process or an event loop.
# (jinja2 is not among them: the domain renders templates from strings in a sandbox.)
IO_LIBRARIES = {
    "aiokafka",
    "aiosmtpd",
    "aiosmtplib",
    "asyncio",
    "asyncpg",
    "confluent_kafka",
    "http.client",
    "http.server",
    "httpx",
    "psycopg",
    "psycopg2",
    "requests",
    "smtplib",
    "socket",
    "sqlite3",
    "starlette",
    "subprocess",
    "urllib.request",
    "uvicorn",
}
# Project modules that do I/O themselves (a domain importing them is not pure either).
IO_MODULES = (
    "shared.messaging",
    "shared.db",
    "shared.health",
    "shared.http",
    "shared.mail",
    "shared.pages",
    "shared.runtime",
    "tools",
)

# SQL statements as they are written in string literals (upper-case keywords, as in
# every query of the project; prose in lower case does not match).
SQL = re.compile(
    r"\bSELECT\s+\S"
    r"|\bINSERT\s+INTO\b"
    r"|\bUPDATE\s+\w[\w.]*(\s+\w+)?\s+SET\b"
    r"|\bDELETE\s+FROM\b",
)
# Where SQL may be written, relative to the repository root.
SQL_HOMES = (
    re.compile(r"services/[^/]+/adapters/"),
    re.compile(r"shared/db/"),
    re.compile(r"tests/"),
    re.compile(r"bench/"),
    re.compile(r"services/[^/]+/migrations/"),
)
SKIPPED_DIRS = {".git", ".venv", ".venv-ci", "node_modules", "var", "build", "__pycache__"}


def python_files(*tops: str) -> Iterator[Path]:
    """Every .py file under the given top-level folders (all of the repository if none)."""
    roots = [ROOT / t for t in tops] if tops else [ROOT]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(ROOT).parts
            if not SKIPPED_DIRS.intersection(rel) and not rel[0].startswith("."):
                yield path


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute name) for every name `path` imports, relative imports resolved:
    `import a.b` yields `a.b`, `from a import b` yields `a.b` (b may be a module)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


Function = ast.FunctionDef | ast.AsyncFunctionDef


def functions(path: Path) -> Iterator[tuple[str, Function]]:
    """(qualified name, node) of every function and method in `path`, nested ones too."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, Function]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if isinstance(child, Function):
                    yield name, child
                yield from walk(child, f"{name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree(path), "")


def enclosing(path: Path, line: int) -> str:
    """The innermost function holding `line`, or `<module>`."""
    best, size = "<module>", None
    for name, node in functions(path):
        end = node.end_lineno or node.lineno
        if node.lineno <= line <= end and (size is None or end - node.lineno < size):
            best, size = name, end - node.lineno
    return best


def docstrings(module: ast.Module) -> set[int]:
    """ids of the docstring nodes (prose, not SQL, even when it quotes a statement)."""
    found = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def by_place(offender: str) -> tuple[str, int]:
    path, line = offender.split(" ")[0].split(":")[:2]
    return path, int(line)


def fail_with(rule: str, offenders: list[str]) -> None:
    """Fails naming every offender once, as `path:line what`, in file and line order."""
    if offenders:
        listed = sorted(set(offenders), key=by_place)
        pytest.fail(f"{rule}: {len(listed)} offender(s)\n  " + "\n  ".join(listed), False)


def test_no_service_imports_another_service() -> None:
    """Services talk only through topics: services/X never imports services.Y."""
    offenders = []
    for service in SERVICES:
        for path in python_files(f"services/{service}"):
            for line, module in imports(path):
                parts = module.split(".")
                if parts[0] == "services" and parts[1] in SERVICES and parts[1] != service:
                    offenders.append(f"{rel(path)}:{line} imports {module}")
    fail_with("a service imports another service", offenders)


def domain_files() -> Iterator[Path]:
    for service in SERVICES:
        yield from python_files(f"services/{service}/domain")
    yield from python_files("shared/domain")


def test_domains_import_no_io() -> None:
    """services/*/domain/ and shared/domain/ import no I/O library or I/O module."""
    offenders = []
    for path in domain_files():
        for line, module in imports(path):
            io = any(within(module, m) for m in (*IO_LIBRARIES, *IO_MODULES))
            adapters = within(module, "services") and ".adapters." in f"{module}."
            if io or adapters:
                offenders.append(f"{rel(path)}:{line} imports {module}")
    fail_with("a domain imports I/O", offenders)


def test_domains_define_no_async_functions() -> None:
    """A domain decides; it never awaits (no `async def` in a domain)."""
    offenders = [
        f"{rel(path)}:{node.lineno} async def {name}"
        for path in domain_files()
        for name, node in functions(path)
        if isinstance(node, ast.AsyncFunctionDef)
    ]
    fail_with("a domain defines async functions", offenders)


def test_sql_only_in_adapters_and_shared_db() -> None:
    """SQL string literals only in services/*/adapters/ and shared/db/ (and tests, bench)."""
    offenders = []
    for path in python_files():
        name = rel(path)
        if any(home.match(name) for home in SQL_HOMES):
            continue
        module = tree(path)
        prose = docstrings(module)
        for node in ast.walk(module):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in prose
                and SQL.search(node.value)
            ):
                statement = " ".join(node.value.split())[:60]
                where = enclosing(path, node.lineno)
                offenders.append(f"{name}:{node.lineno} in {where}: {statement!r}")
    fail_with("SQL outside the adapters and shared/db", offenders)


def test_no_function_in_services_is_longer_than_60_lines() -> None:
    """Functions in services/ fit on a screen: at most 60 lines, `def` to last line."""
    offenders = []
    for path in python_files("services"):
        for name, node in functions(path):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                offenders.append(f"{rel(path)}:{node.lineno} {name} ({length} lines)")
    fail_with(f"functions over {MAX_FUNCTION_LINES} lines", offenders)


def test_shared_and_services_do_not_import_tools() -> None:
    """tools/ uses shared/ and services/, never the other way round."""
    offenders = [
        f"{rel(path)}:{line} imports {module}"
        for top in ("shared", "services")
        for path in python_files(top)
        for line, module in imports(path)
        if within(module, "tools")
    ]
    fail_with("shared/ or services/ imports tools/", offenders)


# What a use case must not import: the adapters behind its unit of work.
ADAPTER_MODULES = ("shared.db", "shared.messaging", "faststream", "aiokafka", "asyncpg")


def use_case_files() -> Iterator[Path]:
    for service in SERVICES:
        yield ROOT / "services" / service / "handlers.py"
    yield ROOT / "shared" / "privacy_requests.py"


def test_use_cases_import_no_adapters() -> None:
    """handlers.py and domain/ see the world through their work: no adapters, no
    `shared.db`, no `shared.messaging`, no FastStream, aiokafka or asyncpg."""
    offenders = []
    for path in [*use_case_files(), *domain_files()]:
        for line, module in imports(path):
            adapters = within(module, "services") and ".adapters." in f"{module}."
            if adapters or any(within(module, m) for m in ADAPTER_MODULES):
                offenders.append(f"{rel(path)}:{line} imports {module}")
    fail_with("a use case imports an adapter", offenders)


def test_kafka_is_declared_in_one_module_per_service() -> None:
    """`services/<name>/entrypoints/kafka.py` declares the service's subscribers and
    publishers; no other module of the service calls `subscribe` or `publishes`."""
    offenders, declared = [], set()
    for service in SERVICES:
        home = ROOT / "services" / service / "entrypoints" / "kafka.py"
        for path in python_files(f"services/{service}"):
            for node in ast.walk(tree(path)):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("subscribe", "publishes")
                ):
                    if path == home:
                        declared.add(service)
                    else:
                        offenders.append(f"{rel(path)}:{node.lineno} {node.func.attr}(...)")
    missing = [
        f"services/{s}/entrypoints/kafka.py:0 missing" for s in SERVICES if s not in declared
    ]
    fail_with("Kafka declared outside entrypoints/kafka.py", offenders + missing)


def test_the_checks_see_the_tree() -> None:
    """The rules above are not vacuous: they find the services, domains, functions and
    SQL they are about (a moved folder would otherwise make every check pass)."""
    assert set(SERVICES) == {"consent", "suppression", "flow_executor", "alert_dispatcher"}
    assert list(domain_files())
    assert any(True for path in python_files("services") for _ in functions(path))
    assert any(
        isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.search(n.value)
        for path in python_files("shared/db")
        for n in ast.walk(tree(path))
    )
    assert list(imports(ROOT / "tools/cli.py"))
