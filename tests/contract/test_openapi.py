"""The HTTP API reference (`deploy/contracts/openapi/`): the committed documents are what
`tools/openapi_gen.py` generates from the code, they name exactly the routes each
service serves, and they are valid OpenAPI 3.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tools import openapi_gen

spec_validator = pytest.importorskip(
    "openapi_spec_validator", reason="openapi-spec-validator comes with the dev extras"
)

COMMITTED = openapi_gen.DEFAULT_DIR


def _committed(service: str) -> dict[str, Any]:
    return json.loads((COMMITTED / openapi_gen.file_name(service)).read_text())


def test_committed_openapi_documents_match_the_code() -> None:
    """Fails when a route or its description changed and the generator was not run."""
    generated = openapi_gen.documents()
    assert {p.name for p in COMMITTED.glob("*.json")} == set(generated), (
        "run: python -m tools.openapi_gen"
    )
    stale = [
        name
        for name, doc in generated.items()
        if (COMMITTED / name).read_text() != openapi_gen.render(doc)
    ]
    assert not stale, f"stale API reference {stale}; run: python -m tools.openapi_gen"


@pytest.mark.parametrize("service", openapi_gen.SERVICES)
def test_openapi_document_names_every_route_the_service_serves(service: str) -> None:
    """Every (method, path) the service's HTTP server registers is in its document, and
    the document names nothing else; an API-key route says so."""
    served = {
        (method.lower(), route.path)
        for route in openapi_gen.service_routes(service)
        for method in route.methods or {"GET"}
        if method != "HEAD"
    }
    doc = _committed(service)
    documented = {(m, path) for path, ops in doc["paths"].items() for m in ops}
    assert served == documented
    for path, ops in doc["paths"].items():
        for op in ops.values():
            keyed = op["security"] == [{"apiKey": []}]
            assert keyed == path.startswith("/accounts/{account_id}"), path
            if keyed:
                assert {"401", "404"} <= set(op["responses"]), path


@pytest.mark.parametrize("service", openapi_gen.SERVICES)
def test_openapi_document_is_valid_openapi_3_1(service: str) -> None:
    doc = _committed(service)
    assert doc["openapi"].startswith("3.1.")
    spec_validator.validate(doc)


def test_operator_bodies_come_from_the_contract_models() -> None:
    """A command's body fields are the contract model's own schema, not a copy."""
    from shared.contracts import ConsentCommand

    doc = _committed("consent")
    body = doc["paths"]["/accounts/{account_id}/profiles/{profile_id}/consent/{action}"]
    props = body["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    model = ConsentCommand.model_json_schema(ref_template=openapi_gen.REF)["properties"]
    assert props["evidence"] == model["evidence"]
    assert props["profile"] == model["profile"]
    assert "Profile" in doc["components"]["schemas"]
