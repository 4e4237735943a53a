"""The HTTP API reference: one OpenAPI 3.1 document per service, built from its routes.

A service's document comes from the routes its HTTP server serves
(`Runtime.app_routes()`): paths, methods, path parameters, whether the API key guards a
route (`ApiAuth.guarded`) and each endpoint's docstring. What a handler reads from the
query and its body, and its main answers, are named in `OPERATIONS` below; request
bodies that are commands take their fields from the pydantic contract models
(`model_json_schema()`). Building refuses a route `OPERATIONS` does not describe, and an
entry no route has.

Each service builds its document once at start-up and serves it at `/openapi.json`, with
a readable page of it at `/docs` (`docs_page`). `tools/openapi_gen.py` writes the same
documents to `deploy/contracts/openapi/`, where a test fails when they differ.
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from shared.contracts import ConsentCommand, PrivacyRequest, SuppressionCommand
from shared.messaging.dead_letters_http import SERVED_BY
from shared.operator import OPERATOR_ACTS, SUPPRESSION_ACTIONS
from shared.pages import STYLESHEET_PATH

SERVICES = ("consent", "suppression", "flow_executor", "alert_dispatcher")
TITLES = {
    "consent": "consentflow consent service",
    "suppression": "consentflow suppression service",
    "flow_executor": "consentflow flow executor",
    "alert_dispatcher": "consentflow alert dispatcher",
}
REF = "#/components/schemas/{model}"

# --- what the code does not say by itself --------------------------------------------

STR = {"type": "string"}
JSON = "application/json"
HTML = "text/html"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: dict(STR))
    required: bool = False


@dataclass(frozen=True)
class Body:
    """A request body: a JSON object (fields taken from a model, or a schema) or a form."""

    description: str
    model: type[BaseModel] | None = None
    fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    media: str = JSON
    defaults: tuple[tuple[str, Any], ...] = ()  # the handler's, where they differ


@dataclass(frozen=True)
class Op:
    ok: tuple[int, str] = (200, "The resource as JSON.")
    query: tuple[Param, ...] = ()
    body: Body | None = None
    errors: tuple[tuple[int, str], ...] = ()
    media: str = JSON
    schema: str | None = None  # a component for the success body
    path: tuple[tuple[str, tuple[str, ...]], ...] = ()  # path parameters' allowed values


def _limit(default: int, most: int) -> Param:
    return Param(
        "limit",
        f"How many entries at most (default {default}, at most {most}).",
        {"type": "integer", "minimum": 1, "maximum": most, "default": default},
    )


WHERE = (
    Param("list_id", "Answer for this list (list-scoped consent and suppressions)."),
    Param("client_id", "Answer on behalf of this client (scoped opt-outs, C10)."),
    Param("user_id", "Answer on behalf of this user (scoped opt-outs, C10)."),
)
TOKEN = (Param("token", "The signed token of the link in the mail.", required=True),)
PAGE = Op(
    ok=(200, "The page (in the account's brand and language)."),
    query=TOKEN,
    errors=((400, "The link is not genuine or not readable (an HTML page says so)."),),
    media=HTML,
)
PAGE_POST = Op(
    ok=(200, "The page saying what changed."),
    query=TOKEN,
    body=Body(
        "The page's button (or an RFC 8058 one-click POST).",
        schema={"type": "object", "properties": {"action": STR}},
        media=FORM,
    ),
    errors=((400, "The link is not genuine or not readable (an HTML page says so)."),),
    media=HTML,
)
ACCEPTED = (202, "Accepted: written to the command topic; applied asynchronously.")
SETTINGS_FIELDS = {
    "email_double_opt_in": {"type": ["boolean", "null"]},
    "from_email": {"type": ["string", "null"], "format": "email"},
    "sms_reply_stop": {"type": ["string", "null"], "maxLength": 640},
    "sms_reply_start": {"type": ["string", "null"], "maxLength": 640},
    "sms_reply_help": {"type": ["string", "null"], "maxLength": 640},
}
PAGE_FIELDS = {
    "display_name": {"type": ["string", "null"]},
    "logo_url": {"type": ["string", "null"], "format": "uri"},
    "accent_colour": {"type": ["string", "null"], "description": "A colour like #1a73e8."},
    "support_email": {"type": ["string", "null"], "format": "email"},
    "language": {"type": ["string", "null"], "description": "A language the pages speak."},
    "list_names": {"type": "object", "additionalProperties": STR},
    "optout_confirmation_email": {"type": "boolean"},
}
ALERT_PAGE_FIELDS = {
    k: v for k, v in PAGE_FIELDS.items() if k not in ("list_names", "optout_confirmation_email")
}


def _settings_body(fields: dict[str, Any], text: str) -> Body:
    return Body(
        text, schema={"type": "object", "properties": fields, "additionalProperties": False}
    )


# The operator's suppression act, served by the consent and the suppression service alike.
SUPPRESSION_ACT = Op(
    ok=ACCEPTED,
    body=Body(
        "The suppression (`action` in the path: suppress or unsuppress).",
        SuppressionCommand,
        ("profile", "reason", "channel", "list_id"),
        defaults=(("reason", "manual"),),
    ),
    path=(("action", SUPPRESSION_ACTIONS),),
    errors=(
        (404, "An unknown action."),
        (422, "Refused, with the reason (S5: a spam complaint is not lifted here)."),
    ),
    schema="Accepted",
)

ACCOUNT = "/accounts/{account_id}"
PROFILE = ACCOUNT + "/profiles/{profile_id}"


def _dead_letters(service: str) -> dict[tuple[str, str], Op]:
    """The dead-letter routes a service serves for its input topics (X1)."""
    served = (("topic", SERVED_BY[service]),)
    refused = ((404, "A topic whose dead letters another service keeps."),)
    return {
        ("GET", ACCOUNT + "/dead-letters/{topic}"): Op(
            ok=(200, "The account's dead letters of the topic, oldest first, with reasons."),
            path=served,
            errors=refused,
        ),
        ("POST", ACCOUNT + "/dead-letters/{topic}/replay"): Op(
            ok=(200, "What was replayed, replayed before, or cannot be replayed."),
            path=served,
            errors=refused,
        ),
    }


OPERATIONS: dict[str, dict[tuple[str, str], Op]] = {
    "consent": {
        **_dead_letters("consent"),
        ("GET", PROFILE + "/consent"): Op(
            query=WHERE, errors=((404, "No such profile."),), schema="ProfileConsent"
        ),
        ("GET", PROFILE + "/consent/history"): Op(ok=(200, "The history rows, oldest first.")),
        ("GET", PROFILE + "/consent/receipts"): Op(ok=(200, "The receipts and the chain head.")),
        ("GET", PROFILE + "/consent/verify"): Op(ok=(200, "The verdict of the profile's chain.")),
        ("GET", PROFILE + "/consent/explain"): Op(
            ok=(200, "May a message go now, and on which facts."),
            query=(
                Param("channel", "The channel.", {"enum": ["email", "sms", "push"]}),
                Param("purpose", "The purpose.", {"enum": ["marketing", "transactional"]}),
                *WHERE,
            ),
            errors=((422, "An unknown channel or purpose."),),
        ),
        ("GET", ACCOUNT + "/consent/verify"): Op(ok=(200, "The verdict of every chain.")),
        ("POST", PROFILE + "/consent/{action}"): Op(
            ok=ACCEPTED,
            body=Body(
                "The act (`action` in the path: subscribe, unsubscribe or resubscribe). "
                "`profile` adds attributes (email, phone_number) to those already known.",
                ConsentCommand,
                (
                    "profile",
                    "channel",
                    "purpose",
                    "list_id",
                    "method",
                    "scope",
                    "evidence",
                    "notice",
                    "jurisdiction",
                ),
                defaults=(("channel", "email"), ("method", "manual")),
            ),
            path=(("action", OPERATOR_ACTS),),
            errors=(
                (404, "An unknown action."),
                (422, "The act is refused, with the reason (C11: evidence is required)."),
            ),
            schema="Accepted",
        ),
        ("POST", PROFILE + "/suppressions/{action}"): SUPPRESSION_ACT,
        ("GET", PROFILE + "/links"): Op(
            ok=(200, "The signed unsubscribe and preference links."),
            query=(
                Param("scope", "The opt-out level the links act on.", {"default": "group"}),
                *WHERE,
            ),
            errors=((422, "A list_id with a scope other than group."),),
        ),
        ("GET", ACCOUNT + "/consent/export.csv"): Op(
            ok=(200, "Email marketing consent per profile, as CSV."), media="text/csv"
        ),
        ("GET", ACCOUNT + "/segments/not-opted-in"): Op(
            ok=(200, "A page of profiles; `next_after` continues."),
            query=(_limit(1000, 10_000), Param("after", "The `next_after` of the last page.")),
        ),
        ("GET", ACCOUNT + "/consent/settings"): Op(ok=(200, "The account's settings.")),
        ("GET", ACCOUNT + "/profiles"): Op(
            ok=(200, "The matching profiles (id, email, phone number), at most 50."),
            query=(Param("q", "A profile id, or an email or phone number in any spelling."),),
            errors=((422, "No search text."),),
        ),
        ("GET", ACCOUNT + "/opt-outs"): Op(
            ok=(200, "Email opt-outs in force by level, newest first, with the total."),
            query=(
                Param("level", "Only this level.", {"enum": ["group", "client", "user"]}),
                _limit(50, 200),
                Param("offset", "How many to skip.", {"type": "integer", "minimum": 0}),
            ),
            errors=((422, "An unknown level."),),
        ),
        ("PUT", ACCOUNT + "/consent/settings"): Op(
            ok=(200, "The account's settings after the change."),
            body=_settings_body(
                {**SETTINGS_FIELDS, **PAGE_FIELDS},
                "The settings to change; the others keep their values, null clears one.",
            ),
            errors=((422, "An unknown or invalid setting, with the reason."),),
        ),
        ("POST", ACCOUNT + "/privacy-requests"): Op(
            ok=(202, "Accepted, with the request id to read its status by."),
            body=Body(
                "An export or erase of a profile, an email address or a phone number.",
                PrivacyRequest,
                ("request_id", "profile_id", "email", "phone_number", "action"),
                ("action",),
            ),
            errors=((422, "The request does not validate, with pydantic's reasons."),),
        ),
        ("GET", ACCOUNT + "/privacy-requests/{request_id}"): Op(
            ok=(200, "Which services are done, and an export's document."),
            errors=((404, "No such privacy request."),),
        ),
        ("GET", "/links/consent/confirm"): PAGE,
        ("POST", "/links/consent/confirm"): PAGE_POST,
        ("GET", "/links/consent/unsubscribe"): PAGE,
        ("POST", "/links/consent/unsubscribe"): PAGE_POST,
        ("GET", "/links/consent/preferences"): PAGE,
        ("POST", "/links/consent/preferences"): PAGE_POST,
    },
    "suppression": {
        **_dead_letters("suppression"),
        ("GET", PROFILE + "/suppressions"): Op(
            ok=(200, "Suppressions in force, soft-bounce count and history."),
            errors=((404, "No such profile."),),
        ),
        ("POST", PROFILE + "/suppressions/{action}"): SUPPRESSION_ACT,
    },
    "flow_executor": {
        **_dead_letters("flow_executor"),
        ("GET", ACCOUNT + "/flows"): Op(
            ok=(200, "A page of the account's flows with their steps; `next_after` continues."),
            query=(
                _limit(50, 200),
                Param("after", "The `next_after` of the last page."),
                Param("flow_id", "Only this flow."),
            ),
        ),
        ("GET", ACCOUNT + "/flows/{flow_id}/activity"): Op(
            ok=(200, "Per step: scheduled, in review, executed, skipped by reason."),
            query=(_limit(100, 1000),),
            errors=((404, "No such flow."),),
        ),
        ("GET", ACCOUNT + "/reviews"): Op(
            ok=(200, "The actions held for review, oldest first."), query=(_limit(100, 1000),)
        ),
        ("POST", ACCOUNT + "/reviews/{alert_id}/{decision}"): Op(
            path=(("decision", ("approve", "reject")),),
            ok=(200, "The alert's new status."),
            errors=(
                (404, "An unknown decision (approve, reject) or no such alert in review."),
                (409, "The alert was already decided."),
            ),
        ),
        ("GET", PROFILE + "/reachability"): Op(
            ok=(200, "The executor's view of the profile."),
            query=WHERE,
            errors=((404, "No such profile."),),
        ),
        ("GET", ACCOUNT + "/sending-settings"): Op(ok=(200, "The sending window.")),
        ("PUT", ACCOUNT + "/sending-settings"): Op(
            ok=(200, "The sending window after the change."),
            body=_settings_body(
                {
                    "window_start": {"type": "string", "examples": ["08:00"]},
                    "window_end": {"type": "string", "examples": ["21:00"]},
                    "timezone": {"type": "string", "examples": ["Europe/Berlin"]},
                    "email_quiet_hours": {"type": "boolean"},
                },
                "The fields to change; the others keep their values.",
            ),
            errors=((422, "A bad window, zone or unknown field, with the reason."),),
        ),
    },
    "alert_dispatcher": {
        ("GET", "/links/recipients/confirm"): PAGE,
        ("POST", "/links/recipients/confirm"): PAGE_POST,
        ("GET", "/links/recipients/unsubscribe"): PAGE,
        ("POST", "/links/recipients/unsubscribe"): PAGE_POST,
        ("GET", ACCOUNT + "/flows/{flow_id}/alerts"): Op(errors=((404, "No such flow."),)),
        ("GET", ACCOUNT + "/alerts/{flow_id}/{step_id}"): Op(
            query=(
                Param("status", "Only alerts with this status (sent, skipped, failed, ...)."),
                _limit(100, 1000),
            ),
            errors=((404, "No such alert action."),),
        ),
        ("GET", ACCOUNT + "/alert-activity"): Op(
            query=(Param("email", "Only this recipient."), _limit(100, 1000))
        ),
        ("GET", ACCOUNT + "/alert-recipients"): Op(),
        ("GET", ACCOUNT + "/alert-settings"): Op(),
        ("PUT", ACCOUNT + "/alert-settings"): Op(
            ok=(200, "The settings after the change."),
            body=Body(
                "The new limit.",
                schema={
                    "type": "object",
                    "properties": {
                        "alert_send_limit_per_hour": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 10_000_000,
                        }
                    },
                    "required": ["alert_send_limit_per_hour"],
                },
            ),
            errors=((422, "A limit out of range."),),
        ),
        ("GET", ACCOUNT + "/alert-pages"): Op(),
        ("PUT", ACCOUNT + "/alert-pages"): Op(
            ok=(200, "The page settings after the change."),
            body=_settings_body(ALERT_PAGE_FIELDS, "The fields to change; null clears one."),
            errors=((422, "An unknown or invalid setting, with the reason."),),
        ),
        ("POST", ACCOUNT + "/alert-recipients/{email}/resend"): Op(
            ok=(202, "The confirmation mail is queued."),
            errors=(
                (404, "No such alert recipient."),
                (409, "The recipient is not waiting for a confirmation."),
                (422, "Not a valid email address."),
            ),
        ),
    },
}
COMMON = {
    ("GET", "/healthz"): Op(ok=(200, "The process answers.")),
    ("GET", "/readyz"): Op(
        ok=(200, "Ready: every check is true."),
        errors=((503, "Not ready: the failing checks carry their reason."),),
    ),
    ("GET", "/metrics"): Op(ok=(200, "Prometheus text format."), media="text/plain"),
    ("GET", STYLESHEET_PATH): Op(ok=(200, "The pages' stylesheet."), media="text/css"),
    ("GET", "/openapi.json"): Op(ok=(200, "This document (OpenAPI 3.1).")),
    ("GET", "/docs"): Op(ok=(200, "This document as a page to read."), media=HTML),
}

COMPONENTS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every 4xx answer: the reason, and pydantic's details for a 422 "
        "of a command that does not validate.",
        "properties": {"error": STR, "details": {"type": "array", "items": {"type": "object"}}},
        "required": ["error"],
    },
    "Accepted": {
        "type": "object",
        "properties": {"command_id": STR, "status": {"const": "accepted"}},
        "required": ["command_id", "status"],
    },
    "ProfileConsent": {
        "type": "object",
        "description": "C14: per channel status, consent time, method, can_receive and "
        "suppressions; the pending double opt-ins.",
        "properties": {
            "account_id": STR,
            "profile_id": STR,
            "profile": {"type": "object"},
            "channels": {"type": "object"},
            "lists": {"type": "object"},
            "opt_outs": {},
            "phone_number": {"type": ["string", "null"]},
            "erased_hold": {"type": "boolean"},
            "pending_confirmations": {"type": "array", "items": {"type": "object"}},
        },
    },
}


# --- the routes, as the services register them -------------------------------------


def operations(route: Route) -> list[str]:
    """The methods a route answers, without HEAD (Starlette answers it with GET)."""
    return sorted(m for m in (route.methods or {"GET"}) if m != "HEAD")


def _doc(endpoint: Any) -> tuple[str, str]:
    text = inspect.cleandoc(endpoint.__doc__ or "")
    flat = " ".join(text.split())
    summary = flat.split(". ")[0].split(": GET")[0].rstrip(".")
    return summary[:120], flat


def _model_body(body: Body, schemas: dict[str, Any]) -> dict[str, Any]:
    schema = body.model.model_json_schema(ref_template=REF)  # type: ignore[union-attr]
    schemas.update(schema.pop("$defs", {}))
    props = schema["properties"]
    props.update({f: {**props[f], "default": v} for f, v in body.defaults})
    return {
        "type": "object",
        "description": f"Fields of {body.model.__name__}; the others are set by the service.",  # type: ignore[union-attr]
        "properties": {f: props[f] for f in body.fields},
        **({"required": list(body.required)} if body.required else {}),
    }


def _error(text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(
    route: Route, method: str, op: Op, schemas: dict[str, Any], service: str
) -> dict[str, Any]:
    summary, description = _doc(route.endpoint)
    guarded = getattr(route.endpoint, "requires_api_key", False)
    params = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(op, name)}
        for name in route.param_convertors
    ] + [
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "description": p.description,
            "schema": p.schema,
        }
        for p in op.query
    ]
    status, text = op.ok
    body_schema: dict[str, Any] = (
        {"$ref": f"#/components/schemas/{op.schema}"} if op.schema else {"type": "object"}
    )
    if op.media != JSON:
        body_schema = {"type": "string"}
    responses: dict[str, Any] = {
        str(status): {"description": text, "content": {op.media: {"schema": body_schema}}}
    }
    if op.body is not None and op.body.media == JSON:
        responses["400"] = _error("The body is not a JSON object.")
    if guarded:
        responses["401"] = _error("A missing or unknown API key.")
        responses["404"] = _error("Not found (also: the path's account is not the key's).")
    for code, reason in op.errors:
        responses[str(code)] = (
            {"description": reason, "content": {HTML: {"schema": {"type": "string"}}}}
            if op.media == HTML
            else _error(reason)
        )
    out: dict[str, Any] = {
        "operationId": method.lower() + re.sub(r"[^a-z0-9]+", "_", route.path.lower()).rstrip("_"),
        "summary": summary or f"{method} {route.path}",
        "description": description,
        "tags": [_tag(route.path)],
    }
    if params:
        out["parameters"] = params
    if op.body is not None:
        schema = op.body.schema if op.body.schema is not None else _model_body(op.body, schemas)
        out["requestBody"] = {
            "description": op.body.description,
            "required": op.body.media == JSON and bool(op.body.required or op.body.model is None),
            "content": {op.body.media: {"schema": schema}},
        }
    out["security"] = [{"apiKey": []}] if guarded else []
    out["responses"] = dict(sorted(responses.items()))
    return out


def _path_schema(op: Op, name: str) -> dict[str, Any]:
    allowed = dict(op.path).get(name)
    return {"type": "string", "enum": list(allowed)} if allowed else dict(STR)


def _tag(path: str) -> str:
    if path.startswith("/links/") or path == STYLESHEET_PATH:
        return "pages"
    if path.startswith("/accounts/"):
        return "api"
    return "operations"


def openapi(service: str, routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `service`, whose HTTP server serves `routes`."""
    own = OPERATIONS.get(service, {})  # a runtime that is no service: the common routes
    table = {**COMMON, **own}
    schemas: dict[str, Any] = dict(COMPONENTS)
    paths: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, str]] = set()
    for route in (r for r in routes if isinstance(r, Route)):
        for method in operations(route):
            key = (method, route.path)
            if key not in table:
                raise LookupError(f"{service}: {method} {route.path} is not in OPERATIONS")
            seen.add(key)
            paths.setdefault(route.path, {})[method.lower()] = _operation(
                route, method, table[key], schemas, service
            )
    if stale := set(own) - seen:
        raise LookupError(f"{service}: OPERATIONS names routes it does not serve: {stale}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLES.get(service, f"consentflow {service}"),
            "version": "1",
            "description": (
                "Generated from the service's routes (shared/openapi.py), served at "
                "/openapi.json and readable at /docs. Every "
                "/accounts/{account_id}/ route takes an API key that grants that one "
                "account (X5). Any route answers 400 for a control character in the "
                "path or query or a body that is not JSON, and 413 for a body over the "
                "input limit."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "HTTP_PORT of the service"}],
        "tags": [
            {"name": "api", "description": "The per-account API (an account's API key)."},
            {"name": "pages", "description": "The pages behind the links in mails."},
            {
                "name": "operations",
                "description": "Health, readiness, metrics and this reference.",
            },
        ],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <key>; each key grants one "
                    "account (API_KEYS).",
                }
            },
        },
    }


# --- serving it ----------------------------------------------------------------------


def reference_routes(document: Callable[[], dict[str, Any]]) -> list[Route]:
    """`/openapi.json` (the document) and `/docs` (a page of it); neither takes a key.
    `document()` answers the service's document, built once."""

    async def openapi_json(_: Request) -> Response:
        """The service's OpenAPI 3.1 document."""
        return JSONResponse(document())

    async def docs(_: Request) -> Response:
        """The service's API reference as a page: every operation, its parameters and auth."""
        return HTMLResponse(docs_page(document()))

    return [Route("/openapi.json", openapi_json), Route("/docs", docs)]


def docs_page(document: dict[str, Any]) -> str:
    """A plain HTML page of `document`: per operation its method, path, summary, auth,
    parameters, request body and answers (no script, nothing fetched from elsewhere)."""
    e = html.escape
    title = e(document["info"]["title"])
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}: HTTP API</title>",
        "<style>body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;"
        "padding:0 1rem}section{border-top:1px solid #ccc;padding:.4rem 0}"
        "code{background:#f3f3f3;padding:0 .2rem}table{border-collapse:collapse}"
        "td,th{text-align:left;padding:.1rem .6rem .1rem 0;vertical-align:top}"
        ".method{font-weight:bold;min-width:4rem;display:inline-block}</style>",
        "</head><body>",
        f"<h1>{title}</h1>",
        f"<p>{e(document['info'].get('description', ''))}</p>",
        '<p>The document itself: <a href="/openapi.json">/openapi.json</a> (OpenAPI '
        f"{e(document['openapi'])}).</p>",
    ]
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            parts.append(_docs_operation(path, method, op))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _docs_operation(path: str, method: str, op: dict[str, Any]) -> str:
    e = html.escape
    auth = "API key (Authorization: Bearer &lt;key&gt;)" if op.get("security") else "none"
    out = [
        f'<section id="{e(op["operationId"])}">',
        f'<h2><span class="method">{e(method.upper())}</span> <code>{e(path)}</code></h2>',
        f"<p>{e(op['summary'])}</p>",
        f"<p>Auth: {auth}</p>",
    ]
    if params := op.get("parameters"):
        out.append("<table><tr><th>Parameter</th><th>In</th><th>Required</th><th></th></tr>")
        for p in params:
            out.append(
                f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td>"
                f"<td>{'yes' if p.get('required') else 'no'}</td>"
                f"<td>{e(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    if body := op.get("requestBody"):
        media = ", ".join(body["content"])
        out.append(f"<p>Body ({e(media)}): {e(body.get('description', ''))}</p>")
    answers = "; ".join(f"{e(code)} {e(r['description'])}" for code, r in op["responses"].items())
    out.append(f"<p>Answers: {answers}</p>")
    out.append("</section>")
    return "\n".join(out)
