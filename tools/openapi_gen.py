"""Write the HTTP API reference: one OpenAPI 3.1 document per service, as each service
serves it at `/openapi.json` (built by `shared/openapi.py` from the routes the service
registers, on a `Runtime` that is never started here).

The documents are committed (`deploy/contracts/openapi/`); a test fails when they
differ from what this generates.

    python -m tools.openapi_gen [OUT_DIR]      # default deploy/contracts/openapi
"""

from __future__ import annotations

import importlib
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from starlette.routing import Route

from shared.openapi import REF, SERVICES, operations
from shared.settings import Settings

__all__ = ["REF", "SERVICES", "documents", "file_name", "openapi", "operations", "render"]

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "deploy" / "contracts" / "openapi"


def service_routes(service: str) -> list[Route]:
    """The routes `service`'s HTTP server serves, from a runtime that is never started."""
    return [r for r in _runtime(service).app_routes() if isinstance(r, Route)]


def _runtime(service: str) -> Any:
    from shared.runtime import Runtime

    # A service starts only with secrets of its own (X6); these are throwaway ones.
    keys = {k: SecretStr(secrets.token_hex(32)) for k in ("link_secret", "privacy_hash_secret")}
    rt = Runtime(service, Settings(**keys))
    importlib.import_module(f"services.{service}.app").build(rt)
    return rt


def openapi(service: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `service`: what its runtime serves at /openapi.json."""
    return _runtime(service).api_document()


def file_name(service: str) -> str:
    return f"{service.replace('_', '-')}.openapi.json"


def documents() -> dict[str, dict[str, Any]]:
    """Every document by its file name."""
    return {file_name(s): openapi(s) for s in SERVICES}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI: regenerate the committed documents."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_DIR
    target.mkdir(parents=True, exist_ok=True)
    for name, doc in documents().items():
        path = target / name
        text = render(doc)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
