"""The console's sessions, CSRF tokens and sign-in delay (W4), without a stack: the pure
logic of `console/sessions.py`, then the application in process with the services'
API replaced by a stand-in that answers as the services do (401 for an unknown key, 404
for another account's data)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from starlette.testclient import TestClient

from console import app as console_app
from console.app import Console, create_app
from console.sessions import (
    COOKIE,
    SessionStore,
    SignInThrottle,
    is_loopback,
    same_token,
    secret_problem,
    sign,
    unsign,
)
from console.settings import ConsoleRefused, ConsoleSettings
from shared.api_client import ApiError

SECRET = b"s" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_w4_a_signed_value_is_refused_when_forged_altered_or_missing() -> None:
    signed = sign(SECRET, "abc")
    assert unsign(SECRET, signed) == "abc"
    assert unsign(b"t" * 32, signed) is None  # another console's secret
    assert unsign(SECRET, "abd" + signed[3:]) is None
    assert unsign(SECRET, signed[:-1] + ("0" if signed[-1] != "0" else "1")) is None
    assert unsign(SECRET, sign(SECRET, "abc", "sign-in")) is None  # another purpose
    for junk in (None, "", ".", "abc", "abc."):
        assert unsign(SECRET, junk) is None


def test_w4_sign_out_ends_the_session_and_its_cookie_opens_nothing_again() -> None:
    store = SessionStore()
    s = store.open("acme", "key-acme-0123456789", "Maria")
    assert store.get(s.session_id) is s
    store.close(s.session_id)
    assert store.get(s.session_id) is None
    assert len(store) == 0


def test_w4_sessions_end_after_idle_time_and_longest_lifetime() -> None:
    clock = Clock()
    store = SessionStore(clock=clock, idle_seconds=60, longest_seconds=300)
    s = store.open("acme", "k" * 20, None)
    for _ in range(4):
        clock.now += 59
        assert store.get(s.session_id) is s  # in use: kept
    clock.now += 61
    assert store.get(s.session_id) is None  # longest lifetime passed
    idle = store.open("acme", "k" * 20, None)
    clock.now += 61
    assert store.get(idle.session_id) is None


def test_w4_each_session_has_its_own_csrf_token() -> None:
    store = SessionStore()
    a, b = store.open("acme", "k" * 20, None), store.open("acme", "k" * 20, None)
    assert a.csrf != b.csrf and a.session_id != b.session_id
    assert same_token(a.csrf, a.csrf)
    assert not same_token(b.csrf, a.csrf)
    assert not same_token("", a.csrf) and not same_token(None, a.csrf)


def test_w4_wrong_keys_wait_longer_each_time_up_to_a_ceiling_and_are_forgotten() -> None:
    clock = Clock()
    t = SignInThrottle(first=0.5, ceiling=4.0, forget_after=600, clock=clock)
    assert [t.failed("10.0.0.1") for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert t.failed("10.0.0.2") == 0.5  # per address
    clock.now += 601
    assert t.failed("10.0.0.1") == 0.5
    t.failed("10.0.0.1")
    t.succeeded("10.0.0.1")
    assert t.failed("10.0.0.1") == 0.5


def test_w4_secure_cookies_outside_loopback_and_a_long_secret() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("console.example.com") and not is_loopback("10.0.0.5")
    assert secret_problem("x" * 31) is not None and secret_problem("x" * 32) is None
    with pytest.raises(ConsoleRefused, match="CONSOLE_SECRET"):
        ConsoleSettings.from_env({"CONSENTFLOW_API_URL": "http://x", "CONSOLE_SECRET": "short"})
    with pytest.raises(ConsoleRefused, match="CONSENTFLOW_CONSENT_API_URL"):
        ConsoleSettings.from_env({})


# --- the application, in process, with a stand-in for the services' API -------------

KEYS = {"key-acme-0123456789": "acme", "key-globex-0123456789": "globex"}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, str | None]]:
    """The services as the console sees them: keys grant one account each (X5)."""
    made: list[tuple[str, str, str, str | None]] = []

    def call(self: Any, service: str, method: str, path: str, body: Any = None) -> Any:
        made.append((service, method, path, self.actor))
        account = KEYS.get(self.key)
        if account is None:
            raise ApiError(service, "missing or unknown API key", 401)
        if not path.startswith(f"/accounts/{account}/"):
            raise ApiError(service, "not found", 404)
        if path.endswith("/consent/settings"):
            return {"display_name": "Acme Outdoor", "accent_colour": "#0b6e4f"}
        if "/reviews/" in path and method == "POST":
            return {"alert_id": "a-1", "status": "approved"}
        return {"in_review": [], "flows": [], "next_after": None}

    monkeypatch.setattr(console_app.ApiClient, "call", call)
    return made


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def client(waits: list[float]) -> TestClient:
    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    settings = ConsoleSettings.from_env({"CONSENTFLOW_API_URL": "http://services.invalid"})
    app = create_app(settings, Console(settings, sleep=sleep))
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def sign_in(client: TestClient, account: str, key: str, name: str = "") -> Any:
    form = client.get("/sign-in").text
    token = re.search(r'name="signin" value="([^"]+)"', form).group(1)
    return client.post(
        "/sign-in", data={"signin": token, "account": account, "key": key, "name": name}
    )


def csrf_of(client: TestClient) -> str:
    page = client.get("/reviews").text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_w4_the_session_cookie_is_signed_httponly_strict_and_holds_no_key(client, calls) -> None:
    r = sign_in(client, "acme", "key-acme-0123456789", "Maria")
    assert r.status_code == 303 and r.headers["location"] == "/flows"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # loopback only
    assert "key-acme" not in cookie


def test_w4_outside_loopback_the_cookie_is_secure(calls) -> None:
    settings = ConsoleSettings.from_env({"CONSENTFLOW_API_URL": "http://services.invalid"})
    c = TestClient(create_app(settings), base_url="https://console.example.com")
    r = c.get("/sign-in")
    assert "Secure" in r.headers["set-cookie"]


def test_w4_a_wrong_key_is_a_plain_error_after_a_growing_delay(client, calls, waits) -> None:
    for _ in range(3):
        r = sign_in(client, "acme", "key-nobody-0123456789")
        assert r.status_code == 401 and "do not match" in r.text
        assert COOKIE + "=" not in r.headers.get("set-cookie", "")
    r = sign_in(client, "acme", "key-globex-0123456789")  # a real key of another account
    assert r.status_code == 401
    assert waits == [0.5, 1.0, 2.0, 4.0]
    assert sign_in(client, "acme", "key-acme-0123456789").status_code == 303


def test_w4_a_form_without_the_sessions_csrf_token_changes_nothing(client, calls) -> None:
    sign_in(client, "acme", "key-acme-0123456789")
    token = csrf_of(client)
    calls.clear()
    assert client.post("/reviews/a-1/approve", data={}).status_code == 403
    assert client.post("/reviews/a-1/approve", data={"csrf": token + "x"}).status_code == 403
    assert not [c for c in calls if c[1] == "POST"]
    r = client.post("/reviews/a-1/approve", data={"csrf": token})
    assert r.status_code == 303
    assert [c[:3] for c in calls if c[1] == "POST"] == [
        ("flow_executor", "POST", "/accounts/acme/reviews/a-1/approve")
    ]


def test_w4_c2_acts_carry_the_operators_name_to_the_api(client, calls) -> None:
    sign_in(client, "acme", "key-acme-0123456789", "Maria Operator")
    client.post("/reviews/a-1/approve", data={"csrf": csrf_of(client)})
    assert ("flow_executor", "POST", "/accounts/acme/reviews/a-1/approve", "Maria Operator") in (
        calls
    )


def test_w4_after_sign_out_the_replayed_cookie_opens_nothing(client, calls) -> None:
    sign_in(client, "acme", "key-acme-0123456789")
    token = csrf_of(client)
    cookie = client.cookies.get(COOKIE)
    assert client.post("/sign-out", data={"csrf": token}).status_code == 303
    client.cookies.set(COOKIE, cookie)  # the copy taken before
    r = client.get("/reviews")
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")
    calls.clear()
    assert client.post("/reviews/a-1/approve", data={"csrf": token}).status_code == 403
    assert calls == []


def test_w4_a_forged_session_cookie_opens_nothing(client, calls) -> None:
    client.cookies.set(COOKIE, "made-up-session." + "0" * 64)
    assert client.get("/flows").status_code == 303
    assert client.post("/reviews/a-1/approve", data={"csrf": "x"}).status_code == 403


def test_w4_c2_an_operator_name_of_any_script_or_with_control_characters_signs_in(
    client, calls
) -> None:
    assert sign_in(client, "acme", "key-acme-0123456789", "Łukasz\r\nX-Evil: 1").status_code == 303
    client.post("/reviews/a-1/approve", data={"csrf": csrf_of(client)})
    assert calls[-1][3] == "?ukaszX-Evil: 1"  # one header value: nothing injected


def test_w4_a_key_that_no_header_can_carry_is_a_wrong_key(client, calls, waits) -> None:
    r = sign_in(client, "acme", "kéy-acme-0123456789")
    assert r.status_code == 401 and 'value="acme"' in r.text  # the account stays filled in
    assert waits == [0.5]


def test_w4_sign_in_goes_back_only_to_a_page_of_the_console(client, calls) -> None:
    form = client.get("/sign-in?next=//evil.example/x").text
    assert 'name="next" value="/flows"' in form
    form = client.get("/sign-in?next=/reviews").text
    assert 'name="next" value="/reviews"' in form


LOCALE = console_app.HERE / "locale"


def test_w6_german_catalogue_is_complete_and_compiled() -> None:
    template = read_po((LOCALE / "messages.pot").open("rb"))
    german = read_po((LOCALE / "de" / "LC_MESSAGES" / "messages.po").open("rb"))
    compiled = read_mo((LOCALE / "de" / "LC_MESSAGES" / "messages.mo").open("rb"))
    ids = {m.id for m in template if m.id}
    assert ids == {m.id for m in german if m.id}, "run pybabel update (docs/console.md)"
    for m in german:
        if m.id:
            assert m.string and not m.fuzzy, m.id
            assert compiled.get(m.id) is not None, f"run pybabel compile: {m.id}"
            want = tuple(m.string) if isinstance(m.string, tuple | list) else m.string
            got = compiled.get(m.id).string
            assert (tuple(got) if isinstance(got, list) else got) == want, f"compile: {m.id}"
