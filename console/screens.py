"""What each screen of the console asks the services' APIs and shows (W5). Every act is
a form POST that the API itself decides: what the API refuses (C11 without evidence,
another account's data), the console refuses with the API's reason (W6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.app import N_, Console, Refused, form_of
from console.sessions import Session
from shared.api_client import ApiError, quote
from shared.contracts import topics
from shared.messaging.dead_letters_http import SERVED_BY

PER_PAGE = 20
# The input topics whose dead letters an operator replays (X1), in the order of the spec.
INPUT_TOPICS = topics.INPUT_TOPICS


@dataclass(frozen=True)
class Page:
    """One page of a long list, with the numbers of its neighbours."""

    items: list[Any]
    number: int
    pages: int
    total: int

    @property
    def previous(self) -> int | None:
        return self.number - 1 if self.number > 1 else None

    @property
    def next(self) -> int | None:
        return self.number + 1 if self.number < self.pages else None


def page_of(items: list[Any], request: Request, name: str = "page") -> Page:
    """The page `?page=` asks for (the first when absent or out of range)."""
    try:
        number = int(request.query_params.get(name, "1"))
    except ValueError:
        number = 1
    pages = max(1, -(-len(items) // PER_PAGE))
    number = min(max(1, number), pages)
    start = (number - 1) * PER_PAGE
    return Page(items[start : start + PER_PAGE], number, pages, len(items))


async def optional(coro: Any) -> Any:
    """An API read that may answer 404 (nothing recorded yet): None then."""
    try:
        return await coro
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def done(session: Session, kind: str, text: str, target: str) -> Response:
    """After a form: a notice shown once on the next page, and a redirect there."""
    session.flash.append((kind, text))
    return RedirectResponse(target, 303)


def back_to(request: Request, form: Any, fallback: str) -> str:
    target = str(form.get("back") or "")
    if target.startswith("/") and not target.startswith("//"):
        return target
    return fallback


# --- flows -----------------------------------------------------------------------------


async def flows(c: Console, request: Request, s: Session) -> Response:
    """The account's flows, a page at a time (the API's own cursor)."""
    after = request.query_params.get("after", "")
    data = await c.get(s, "flow_executor", "/flows", limit=PER_PAGE, after=after)
    return c.page(request, "flows.html", s, title="flows", flows=data["flows"], data=data)


async def flow(c: Console, request: Request, s: Session) -> Response:
    """One flow: its steps with their activity, and each internal alert's "Sent to"
    list with every recipient's status (W5)."""
    flow_id = request.path_params["flow_id"]
    activity = await optional(c.get(s, "flow_executor", f"/flows/{quote(flow_id)}/activity"))
    alerts = await optional(c.get(s, "alert_dispatcher", f"/flows/{quote(flow_id)}/alerts"))
    if activity is None and alerts is None:
        raise Refused(404, N_("no such flow in this account"))
    actions = {a["step_id"]: a for a in (alerts or {}).get("alert_actions", [])}
    listed = (await c.get(s, "flow_executor", "/flows", flow_id=flow_id, limit=1))["flows"]
    return c.page(
        request,
        "flow.html",
        s,
        flow_id=flow_id,
        name=listed[0]["name"] if listed else None,
        activity=activity or {"steps": {}},
        alerts=alerts,
        actions=actions,
    )


def overview(activity_step: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    """An alert action's activity overview (A6, F5): waiting, in review, sent, skipped
    with reasons (the executor's: draft, rejected; the dispatcher's: no confirmed
    recipients...)."""
    totals = action.get("totals", {})
    skipped = [
        {"reason": c["reason"], "count": c["count"]}
        for c in action.get("counts", [])
        if c["status"] == "skipped"
    ]
    skipped += [
        {"reason": r["reason"], "count": r["count"]}
        for r in activity_step.get("skipped", {}).get("reasons", [])
    ]
    return {
        "waiting": activity_step.get("scheduled", {}).get("count", 0) + totals.get("waiting", 0),
        "in_review": activity_step.get("in_review", {}).get("count", 0),
        "sent": totals.get("sent", 0),
        "failed": totals.get("failed", 0),
        "skipped": sum(x["count"] for x in skipped),
        "skipped_reasons": skipped,
    }


async def _action(c: Console, s: Session, flow_id: str, step_id: str) -> tuple[dict, dict]:
    path = f"/alerts/{quote(flow_id)}/{quote(step_id)}"
    action = await c.get(s, "alert_dispatcher", path, limit=1000)
    activity = await optional(c.get(s, "flow_executor", f"/flows/{quote(flow_id)}/activity"))
    step = ((activity or {}).get("steps") or {}).get(step_id, {})
    return action, step


async def alert_action(c: Console, request: Request, s: Session) -> Response:
    """One alert action: "Sent to", the activity overview, and its alerts (filtered by
    status, a page at a time) with who received each and which profile triggered it."""
    flow_id, step_id = request.path_params["flow_id"], request.path_params["step_id"]
    action, step = await _action(c, s, flow_id, step_id)
    wanted = request.query_params.get("status", "")
    alerts = action["alerts"]
    if wanted:
        alerts = [a for a in alerts if a["status"] == wanted]
    held = step.get("in_review", {}).get("alerts", [])
    waiting = step.get("scheduled", {}).get("profiles", [])
    return c.page(
        request,
        "alert_action.html",
        s,
        flow_id=flow_id,
        step_id=step_id,
        action=action,
        overview=overview(step, action),
        held=held,
        waiting=waiting,
        wanted=wanted,
        alerts=page_of(alerts, request),
    )


async def alert(c: Console, request: Request, s: Session) -> Response:
    """One alert: its status or reason, each recipient's delivery, the triggering
    profile, and the approve/reject buttons while it is in review."""
    p = request.path_params
    flow_id, step_id, alert_id = p["flow_id"], p["step_id"], p["alert_id"]
    action, step = await _action(c, s, flow_id, step_id)
    found = next((a for a in action["alerts"] if a["alert_id"] == alert_id), None)
    held = next(
        (h for h in step.get("in_review", {}).get("alerts", []) if h["alert_id"] == alert_id),
        None,
    )
    if found is None and held is None:
        raise Refused(404, N_("no such alert in this alert action"))
    return c.page(
        request,
        "alert.html",
        s,
        flow_id=flow_id,
        step_id=step_id,
        alert_id=alert_id,
        alert=found,
        held=held,
    )


# --- reviews, recipients, activity -----------------------------------------------------


async def reviews(c: Console, request: Request, s: Session) -> Response:
    """The alerts held in manual review, oldest first, with approve and reject."""
    data = await c.get(s, "flow_executor", "/reviews", limit=1000)
    return c.page(request, "reviews.html", s, held=page_of(data["in_review"], request))


async def decide(c: Console, request: Request, s: Session) -> Response:
    """Approve or reject a held alert, as the session's key (C2)."""
    alert_id, decision = request.path_params["alert_id"], request.path_params["decision"]
    if decision not in ("approve", "reject"):
        raise Refused(404, N_("not found"))
    form = await form_of(request)
    await c.api(s, "flow_executor", "POST", f"/reviews/{quote(alert_id)}/{decision}")
    kind = "approved" if decision == "approve" else "rejected"
    return done(s, kind, alert_id, back_to(request, form, "/reviews"))


async def recipients(c: Console, request: Request, s: Session) -> Response:
    """Every alert recipient with their opt-in status and the actions naming them."""
    data = await c.get(s, "alert_dispatcher", "/alert-recipients")
    return c.page(request, "recipients.html", s, recipients=page_of(data["recipients"], request))


async def resend(c: Console, request: Request, s: Session) -> Response:
    """Ask an unconfirmed recipient again: their confirmation mail, once more (A4)."""
    form = await form_of(request)
    email = str(form.get("email") or "")
    await c.api(s, "alert_dispatcher", "POST", f"/alert-recipients/{quote(email)}/resend")
    return done(s, "asked", email, back_to(request, form, "/recipients"))


async def activity(c: Console, request: Request, s: Session) -> Response:
    """Recipient activity (A6): who received which alert about which profile."""
    email = request.query_params.get("email", "").strip()
    data = await c.get(s, "alert_dispatcher", "/alert-activity", email=email, limit=1000)
    return c.page(request, "activity.html", s, email=email, alerts=page_of(data["alerts"], request))


# --- profiles --------------------------------------------------------------------------


async def profiles(c: Console, request: Request, s: Session) -> Response:
    """Find a profile by id, email or phone number in any spelling (I1); one match opens
    it."""
    q = request.query_params.get("q", "").strip()
    found = None
    if q:
        found = (await c.get(s, "consent", "/profiles", q=q))["profiles"]
        if len(found) == 1:
            return RedirectResponse(f"/profiles/{quote(found[0]['profile_id'])}", 303)
    return c.page(request, "profiles.html", s, q=q, found=found)


def opt_out_levels(opt_outs: list[str]) -> list[dict[str, str]]:
    """C10's opt-outs as the levels a person reads: group, client, user."""
    rows = []
    for scope in opt_outs:
        level, _, rest = scope.partition(":")
        client, _, user = rest.partition("/")
        rows.append({"level": level, "client": client, "user": user})
    return rows


EXPLAIN_FIELDS = ("channel", "purpose", "list_id", "client_id", "user_id")


async def profile(c: Console, request: Request, s: Session) -> Response:
    """A profile: consent per channel in plain words, suppressions with reasons, opt-outs
    by level, history, receipts and their verification, explain, and the alerts it
    triggered (W5, C14–C17)."""
    return await profile_page(c, request, s, request.path_params["profile_id"])


async def profile_page(
    c: Console,
    request: Request,
    s: Session,
    profile_id: str,
    status: int = 200,
    refusal: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    base = f"/profiles/{quote(profile_id)}"
    consent = await optional(c.get(s, "consent", base + "/consent"))
    history = (await c.get(s, "consent", base + "/consent/history"))["history"]
    suppression = await optional(c.get(s, "suppression", base + "/suppressions"))
    if consent is None and suppression is None and not history:
        raise Refused(404, N_("no profile with this id in this account"))
    receipts = (await c.get(s, "consent", base + "/consent/receipts"))["receipts"]
    verdict = await c.get(s, "consent", base + "/consent/verify") if receipts else None
    q = request.query_params
    explained = None
    if q.get("channel"):
        wanted = {k: q.get(k) for k in EXPLAIN_FIELDS}
        explained = await c.get(s, "consent", base + "/consent/explain", **wanted)
    recent = await c.get(s, "alert_dispatcher", "/alert-activity", limit=1000)
    triggered = [a for a in recent["alerts"] if a["profile_id"] == profile_id]
    return c.page(
        request,
        "profile.html",
        s,
        status=status,
        profile_id=profile_id,
        consent=consent,
        opt_outs=opt_out_levels((consent or {}).get("opt_outs", [])),
        suppression=suppression,
        history=page_of(list(reversed(history)), request, "history"),
        receipts=page_of(list(reversed(receipts)), request, "receipts"),
        verdict=verdict,
        explained=explained,
        explain_query={k: q.get(k, "") for k in EXPLAIN_FIELDS},
        triggered=triggered[:PER_PAGE],
        refusal=refusal,
        form=form or {},
    )


CONSENT_ACTS = ("subscribe", "unsubscribe", "resubscribe")


async def consent_act(c: Console, request: Request, s: Session) -> Response:
    """An operator's consent act on the profile (C2: recorded as the session's key; C11:
    a re-subscribe after an opt-out needs evidence, or the API refuses it)."""
    profile_id = request.path_params["profile_id"]
    form = {k: v.strip() for k, v in (await form_of(request)).items() if k != "csrf"}
    action = form.get("action", "")
    if action not in CONSENT_ACTS:
        raise Refused(422, N_("choose subscribe, unsubscribe or resubscribe"))
    channel = form.get("channel", "email")
    body: dict[str, Any] = {"channel": channel, "method": "manual"}
    if channel.startswith("sms"):
        body["channel"] = "sms"
        body["purpose"] = "transactional" if channel == "sms_transactional" else "marketing"
    for name in ("evidence", "list_id", "notice", "jurisdiction"):
        if form.get(name):
            body[name] = form[name]
    level = form.get("level", "group")
    if level != "group" or form.get("client_id"):
        body["scope"] = {
            "level": level,
            **({"client_id": form["client_id"]} if form.get("client_id") else {}),
            **({"user_id": form["user_id"]} if form.get("user_id") else {}),
        }
    try:
        await c.api(s, "consent", "POST", f"/profiles/{quote(profile_id)}/consent/{action}", body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        reason = exc.reason + (f" ({exc.details})" if exc.details else "")
        return await profile_page(c, request, s, profile_id, 422, reason, form)
    return done(s, "accepted", action, f"/profiles/{quote(profile_id)}#consent")


async def suppression_act(c: Console, request: Request, s: Session) -> Response:
    """Suppress or lift a suppression (S5: a spam complaint is lifted only by a
    re-subscribe with evidence; the API says so)."""
    profile_id = request.path_params["profile_id"]
    form = {k: v.strip() for k, v in (await form_of(request)).items() if k != "csrf"}
    action = form.get("action", "")
    if action not in ("suppress", "unsuppress"):
        raise Refused(422, N_("choose suppress or unsuppress"))
    body = {"reason": form.get("reason") or "manual", "channel": form.get("channel") or "email"}
    if form.get("list_id"):
        body["list_id"] = form["list_id"]
    path = f"/profiles/{quote(profile_id)}/suppressions/{action}"
    try:
        await c.api(s, "consent", "POST", path, body)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await profile_page(c, request, s, profile_id, 422, exc.reason, form)
    return done(s, "accepted", action, f"/profiles/{quote(profile_id)}#suppressions")


OPT_OUT_LEVELS = ("group", "client", "user")


async def opt_outs(c: Console, request: Request, s: Session) -> Response:
    """The account's email opt-outs by level (C10), as Concep's activity view lists them:
    group, client, user; a page at a time."""
    level = request.query_params.get("level", "")
    if level not in OPT_OUT_LEVELS:
        level = ""
    try:
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        number = 1
    offset = (number - 1) * PER_PAGE
    data = await c.get(s, "consent", "/opt-outs", level=level, limit=PER_PAGE, offset=offset)
    pages = max(1, -(-data["total"] // PER_PAGE))
    page = Page(data["opt_outs"], min(number, pages), pages, data["total"])
    return c.page(request, "opt_outs.html", s, level=level, levels=OPT_OUT_LEVELS, opt_outs=page)


def service_of(topic: str) -> str | None:
    """The service that serves `topic`'s dead letters (one that consumes it)."""
    return next((svc for svc, served in SERVED_BY.items() if topic in served), None)


async def dead_letters(c: Console, request: Request, s: Session) -> Response:
    """The input topics whose dead letters (X1) the services serve, each a link."""
    return c.page(request, "dead_letters.html", s, topics=INPUT_TOPICS)


async def topic_dead_letters(c: Console, request: Request, s: Session) -> Response:
    """The account's dead letters of one topic with their reasons, newest first, and
    the replay button."""
    topic = request.path_params["topic"]
    service = service_of(topic)
    if service is None:
        raise Refused(404, N_("no such topic"))
    data = await c.get(s, service, f"/dead-letters/{quote(topic)}")
    letters = list(reversed(data["dead_letters"]))
    waiting = sum(1 for x in letters if x["replayable"] and not x["replayed"])
    return c.page(
        request,
        "topic_dead_letters.html",
        s,
        topic=topic,
        letters=page_of(letters, request),
        waiting=waiting,
    )


async def replay(c: Console, request: Request, s: Session) -> Response:
    """Re-publish the account's dead letters of a topic, each once (after a fix)."""
    topic = request.path_params["topic"]
    service = service_of(topic)
    if service is None:
        raise Refused(404, N_("no such topic"))
    done_ = await c.api(s, service, "POST", f"/dead-letters/{quote(topic)}/replay")
    counts = (
        f"{len(done_['replayed'])}/{len(done_['already_replayed'])}/{len(done_['not_replayable'])}"
    )
    return done(s, "replayed", counts, f"/dead-letters/{quote(topic)}")


ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/flows", flows, ["GET"]),
    ("/flows/{flow_id}", flow, ["GET"]),
    ("/flows/{flow_id}/alerts/{step_id}", alert_action, ["GET"]),
    ("/flows/{flow_id}/alerts/{step_id}/{alert_id}", alert, ["GET"]),
    ("/reviews", reviews, ["GET"]),
    ("/reviews/{alert_id}/{decision}", decide, ["POST"]),
    ("/recipients", recipients, ["GET"]),
    ("/recipients/resend", resend, ["POST"]),
    ("/activity", activity, ["GET"]),
    ("/profiles", profiles, ["GET"]),
    ("/profiles/{profile_id}", profile, ["GET"]),
    ("/profiles/{profile_id}/consent", consent_act, ["POST"]),
    ("/profiles/{profile_id}/suppressions", suppression_act, ["POST"]),
    ("/opt-outs", opt_outs, ["GET"]),
    ("/dead-letters", dead_letters, ["GET"]),
    ("/dead-letters/{topic}", topic_dead_letters, ["GET"]),
    ("/dead-letters/{topic}/replay", replay, ["POST"]),
]
