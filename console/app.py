"""The console's web application: routes, the session and CSRF checks around every
screen, calls to the services' APIs as the signed-in key, and pages rendered in the
operator's language (W4–W6). What each screen shows is in `screens.py`."""

from __future__ import annotations

import asyncio
import functools
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.support import NullTranslations
from jinja2 import Environment
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from console import sessions
from console.sessions import Session, SessionStore, SignInThrottle
from console.settings import ConsoleRefused, ConsoleSettings
from shared.api_client import ApiClient, ApiError, quote
from shared.pages import (
    STYLESHEET_PATH,
    Brand,
    catalogue,
    language_of,
    stylesheet_route,
    template_environment,
)

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    # Inline styles carry the account's accent; the one script fills in the time zone.
    "content-security-policy": "default-src 'self'; img-src 'self' https: data:;"
    " style-src 'self' 'unsafe-inline'; script-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
}


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The console's compiled catalogue for `lang` (English is the source language)."""
    return catalogue(HERE / "locale", lang)


def when(value: Any, lang: str, zone: str) -> str:
    """An API timestamp in the operator's zone and language ("" for none)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return format_datetime(moment, "medium", tzinfo=tz, locale=lang)


@functools.cache
def environment(lang: str) -> Environment:
    """One Jinja2 environment per language, escaping HTML, with gettext installed."""
    return template_environment(HERE / "templates", translations(lang))


MAX_FORM_BYTES = 64 * 1024


async def form_of(request: Request) -> dict[str, str]:
    """The request's url-encoded form (every form of the console is one), read once;
    a body over 64 KiB is refused."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Refused(413, N_("the form is too large"))
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    request.state.form = fields
    return fields


def N_(message: str) -> str:
    """Marks the console's own words for `pybabel extract -k N_`; translated when shown."""
    return message


class Refused(Exception):
    """A request the console answers with a page and nothing changed (403, 404...). Its
    reason is the API's own words, or the console's marked with `N_` (translated)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Console:
    """The running console: its settings, sessions and sign-in throttle."""

    settings: ConsoleSettings
    store: SessionStore = field(default_factory=SessionStore)
    throttle: SignInThrottle = field(default_factory=SignInThrottle)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    brands: dict[str, Brand] = field(default_factory=dict)

    # --- sessions ---------------------------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        sid = sessions.unsign(self.settings.secret, request.cookies.get(sessions.COOKIE))
        return self.store.get(sid)

    def secure(self, request: Request) -> bool:
        return not sessions.is_loopback(request.url.hostname)

    def set_cookie(self, response: Response, request: Request, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            httponly=True,
            secure=self.secure(request),
            samesite="strict",
            path="/",
        )

    def client(self, session: Session) -> ApiClient:
        """The services' APIs as the session's key, naming the operator (C2)."""
        return ApiClient(
            self.settings.urls, session.key, session.actor, timeout=self.settings.api_timeout
        )

    async def api(self, session: Session, service: str, method: str, path: str, body=None):
        """One call as the session's key under `/accounts/{account}`."""
        full = f"/accounts/{quote(session.account)}{path}"
        return await run_in_threadpool(self.client(session).call, service, method, full, body)

    async def get(self, session: Session, service: str, path: str, **query: Any) -> Any:
        given = {k: v for k, v in query.items() if v not in (None, "")}
        if given:
            path += "?" + urlencode(given)
        return await self.api(session, service, "GET", path)

    # --- pages ------------------------------------------------------------------------

    def brand(self, session: Session | None) -> Brand:
        if session is not None and session.account in self.brands:
            return self.brands[session.account]
        return Brand(name=self.settings.brand_name, accent=self.settings.accent)

    def page(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        lang = language_of(request)
        zone = session.timezone if session else self.settings.timezone
        env = environment(lang)
        html = env.get_template(template).render(
            lang=lang,
            brand=self.brand(session),
            stylesheet=STYLESHEET_PATH,
            session=session,
            csrf=session.csrf if session else "",
            flash=session.take_flash() if session else [],
            zone=zone,
            when=lambda v: when(v, lang, zone),
            path=request.url.path,
            **context,
        )
        return HTMLResponse(
            html, status_code=status, headers={**SECURITY_HEADERS, "content-language": lang}
        )

    def refused(self, request: Request, session: Session | None, exc: Refused) -> HTMLResponse:
        reason = translations(language_of(request)).gettext(exc.reason)
        return self.page(
            request, "error.html", session, status=exc.status, reason=reason, error=exc
        )


Screen = Callable[[Console, Request, Session], Awaitable[Response]]


def signed_in(console: Console, screen: Screen, changes: bool = False) -> Callable:
    """A route that needs a session; `changes`: a form POST that must carry the session's
    CSRF token. Without a session a GET goes to the sign-in page and a POST is refused;
    in both cases nothing changes."""

    async def endpoint(request: Request) -> Response:
        session = console.session_of(request)
        if session is None:
            if request.method == "GET":
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse("/sign-in?" + urlencode({"next": target}), 303)
            return console.refused(
                request, None, Refused(403, N_("not signed in: sign in, then try again"))
            )
        try:
            if changes:
                form = await form_of(request)
                if not sessions.same_token(form.get("csrf"), session.csrf):
                    raise Refused(403, N_("the form did not carry this session's token"))
            return await screen(console, request, session)
        except Refused as exc:
            return console.refused(request, session, exc)
        except ApiError as exc:
            if exc.status == 401:  # the key was withdrawn: the session ends
                console.store.close(session.session_id)
                return RedirectResponse("/sign-in", 303)
            status = exc.status if exc.status in (404, 409, 422) else 502
            return console.refused(request, session, Refused(status, exc.reason))

    endpoint.__name__ = screen.__name__
    return endpoint


def safe_next(target: str | None) -> str:
    """Only a path on this console (never `//elsewhere` or a full URL)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/flows"


# --- sign-in and sign-out --------------------------------------------------------------


async def sign_in_form(console: Console, request: Request) -> Response:
    session = console.session_of(request)
    if session is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), 303)
    return sign_in_page(console, request, 200)


def header_safe(name: str) -> str:
    """The operator's name as an HTTP header carries it (`X-Actor`, Latin-1): control
    characters dropped, any other character outside Latin-1 shown as `?`."""
    kept = (ch for ch in unicodedata.normalize("NFC", name) if ch.isprintable())
    return "".join(ch if ord(ch) < 256 else "?" for ch in kept).strip()


def sign_in_page(
    console: Console, request: Request, status: int, error: str = "", account: str = ""
) -> Response:
    token = secrets.token_urlsafe(24)
    posted = getattr(request.state, "form", None) or {}  # a refused sign-in's own form
    response = console.page(
        request,
        "sign_in.html",
        None,
        status=status,
        signin_token=token,
        error=error,
        account=account or request.query_params.get("account") or console.settings.account,
        next=safe_next(request.query_params.get("next") or posted.get("next")),
        default_zone=console.settings.timezone,
    )
    signed = sessions.sign(console.settings.secret, token, "sign-in")
    console.set_cookie(response, request, sessions.SIGN_IN_COOKIE, signed)
    return response


async def sign_in(console: Console, request: Request) -> Response:
    """Open a session for an account's key, checked against the services' own API; a
    wrong key is answered with a plain error after a growing delay (W4)."""
    try:
        form = await form_of(request)
    except Refused:
        return sign_in_page(console, request, 413, "expired")
    expected = sessions.unsign(
        console.settings.secret, request.cookies.get(sessions.SIGN_IN_COOKIE), "sign-in"
    )
    if expected is None or not sessions.same_token(form.get("signin"), expected):
        return sign_in_page(console, request, 403, "expired")
    account = str(form.get("account") or "").strip()
    key = str(form.get("key") or "").strip()
    actor = header_safe(str(form.get("name") or ""))[:80] or None
    zone = str(form.get("timezone") or "").strip() or console.settings.timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = console.settings.timezone
    address = request.client.host if request.client else "?"
    client = ApiClient(console.settings.urls, key, timeout=console.settings.api_timeout)
    try:
        if not account or not key or not (key.isascii() and key.isprintable()):
            raise ApiError("flow_executor", "missing or malformed", 401)
        await run_in_threadpool(
            client.call, "flow_executor", "GET", f"/accounts/{quote(account)}/reviews?limit=1"
        )
    except ApiError as exc:
        if exc.status in (401, 404):  # unknown key, or a key of another account
            await console.sleep(console.throttle.failed(address))
            return sign_in_page(console, request, 401, "wrong", account)
        return sign_in_page(console, request, 503, "unreachable", account)
    console.throttle.succeeded(address)
    session = console.store.open(account, key, actor, zone)
    await remember_brand(console, session)
    target = safe_next(str(form.get("next") or ""))
    response = RedirectResponse(target, 303)
    signed = sessions.sign(console.settings.secret, session.session_id)
    console.set_cookie(response, request, sessions.COOKIE, signed)
    response.delete_cookie(sessions.SIGN_IN_COOKIE, path="/")
    return response


async def remember_brand(console: Console, session: Session) -> None:
    """The account's own name and colour (its page settings on the consent service)."""
    try:
        settings = await console.get(session, "consent", "/consent/settings")
    except ApiError:
        return
    accent = settings.get("accent_colour") or console.settings.accent
    logo = settings.get("logo_url")
    console.brands[session.account] = Brand(
        name=settings.get("display_name") or session.account,
        accent=accent,
        logo_url=logo if isinstance(logo, str) and logo.startswith("https://") else None,
    )


async def sign_out(console: Console, request: Request, session: Session) -> Response:
    """End the session: its cookie, replayed, opens nothing any more (W4)."""
    console.store.close(session.session_id)
    response = RedirectResponse("/sign-in?signed_out=1", 303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


async def home(console: Console, request: Request) -> Response:
    return RedirectResponse("/flows" if console.session_of(request) else "/sign-in", 303)


async def healthz(_: Request) -> Response:
    """Liveness and readiness: the console keeps nothing that could be unready (the
    services it calls answer for themselves)."""
    return JSONResponse({"status": "ok"})


async def timezone_script(_: Request) -> Response:
    """The one script: fills the sign-in form's time zone from the browser (progressive
    enhancement; without it the console's default zone is used)."""
    js = (
        "document.querySelectorAll('input[name=timezone]').forEach(function (el) {"
        " try { var z = Intl.DateTimeFormat().resolvedOptions().timeZone;"
        " if (z && !el.dataset.chosen) { el.value = z; } } catch (e) {} });"
    )
    return Response(
        js, media_type="text/javascript", headers={"cache-control": "public, max-age=3600"}
    )


def create_app(settings: ConsoleSettings, console: Console | None = None) -> Starlette:
    """The console as an ASGI application."""
    from console import screens

    c = console or Console(settings)

    def public(fn: Callable[[Console, Request], Awaitable[Response]]) -> Callable:
        async def endpoint(request: Request) -> Response:
            return await fn(c, request)

        endpoint.__name__ = fn.__name__
        return endpoint

    routes = [
        Route("/", public(home)),
        Route("/healthz", healthz),
        Route("/readyz", healthz),
        Route("/assets/timezone.js", timezone_script),
        stylesheet_route(),
        Route("/sign-in", public(sign_in_form), methods=["GET"]),
        Route("/sign-in", public(sign_in), methods=["POST"]),
        Route("/sign-out", signed_in(c, sign_out, changes=True), methods=["POST"]),
    ]
    for path, screen, methods in screens.ROUTES:
        changes = "POST" in methods
        routes.append(Route(path, signed_in(c, screen, changes=changes), methods=methods))
    app = Starlette(routes=routes)
    app.state.console = c
    return app


def serve(settings: ConsoleSettings | None = None) -> int:
    """Run the console with uvicorn (`python -m console`, `consentflow console`); 2 when a
    setting is missing or wrong (named on standard error)."""
    import sys

    import uvicorn

    if settings is None:
        try:
            settings = ConsoleSettings.from_env()
        except ConsoleRefused as exc:
            print(f"console: {exc}", file=sys.stderr)
            return 2
    print(f"consentflow console on http://{settings.host}:{settings.port}/", flush=True)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        proxy_headers=False,
    )
    return 0
