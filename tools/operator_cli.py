"""The operator's commands of `consentflow`, against a running deployment (SPEC "Running"):

    consentflow consent show|history|receipts|verify|explain
    consentflow reviews list|approve|reject
    consentflow recipients list|resend    consentflow dlq list|replay
    consentflow privacy export|erase|status   consentflow flows sending-settings

Configured from the environment: `CONSENTFLOW_API_KEY` (Bearer key of one account) and
`CONSENTFLOW_ACCOUNT` (or `--account`); each service's base URL from
`CONSENTFLOW_<SERVICE>_API_URL` (`CONSENT`, `SUPPRESSION`, `FLOW_EXECUTOR`,
`ALERT_DISPATCHER`), falling back to `CONSENTFLOW_API_URL` for a gateway that serves
all four under one address. `dlq` talks to Kafka (`KAFKA_*` settings, as the services).
Output is a table for people, or JSON with `--json` for scripts.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import click

from shared import api_client


class ApiError(click.ClickException):
    """A 4xx/5xx answer, shown with the service's reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnknownProfile(click.ClickException):
    """A profile the consent service has no record of (exit code 1)."""

    def __init__(self, account: str, profile_id: str) -> None:
        super().__init__(
            f"no profile {profile_id!r} in account {account!r}: consent has no record of it"
        )


def base_url(service: str) -> str:
    """The base URL of `service` from the environment (see the module docstring)."""
    url = api_client.service_urls().get(service)
    if not url:
        raise click.UsageError(
            f"set {api_client.url_variable(service)} (or CONSENTFLOW_API_URL) to the"
            f" {service.replace('_', '-')} service's address"
        )
    return url


def call(service: str, method: str, path: str, body: Any = None) -> Any:
    """One API call through the shared client (shared/api_client.py); returns the
    decoded JSON answer or raises ApiError."""
    key = os.environ.get("CONSENTFLOW_API_KEY")
    if not key:
        raise click.UsageError("set CONSENTFLOW_API_KEY to the account's API key")
    client = api_client.ApiClient({service: base_url(service)}, key)
    try:
        return client.call(service, method, path, body)
    except api_client.ApiError as exc:
        raise ApiError(str(exc), exc.status) from None


quote = api_client.quote


# --- output ------------------------------------------------------------------------


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as an aligned text table (None shown as `-`)."""
    if not rows:
        return "(none)"

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, list | dict):
            return json.dumps(v) if isinstance(v, dict) else ", ".join(map(str, v))
        return str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True) if as_json else human(data))


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def account_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--account",
        envvar="CONSENTFLOW_ACCOUNT",
        required=True,
        help="The account id (env CONSENTFLOW_ACCOUNT).",
    )(fn)


# --- consent -----------------------------------------------------------------------


@click.group(
    help="A profile's consent (C14), its audit trail (C2), receipts (C15), their"
    " verification (C16) and explain (C17)."
)
def consent() -> None:
    pass


@consent.command("show", help="A profile's consent per channel, with can_receive (C14).")
@click.argument("profile_id")
@click.option("--list-id", default=None, help="Answer can_receive for this list.")
@account_option
@json_option
def consent_show(profile_id: str, list_id: str | None, account: str, as_json: bool) -> None:
    path = f"/accounts/{quote(account)}/profiles/{quote(profile_id)}/consent"
    if list_id:
        path += f"?list_id={quote(list_id)}"
    try:
        data = call("consent", "GET", path)
    except ApiError as exc:
        if exc.status == 404:
            raise UnknownProfile(account, profile_id) from None
        raise

    def human(d: dict[str, Any]) -> str:
        rows = [{"channel": k, **v} for k, v in d["channels"].items()]
        head = f"profile {d['profile_id']} (account {d['account_id']})"
        cols = ("channel", "status", "can_receive", "consented_at", "method", "suppressions")
        return "\n".join([head, table(rows, cols), *_pending_lines(d)])

    emit(data, as_json, human)


def _pending_lines(d: dict[str, Any]) -> list[str]:
    """C8: each double opt-in waiting for the person's click, in plain words."""
    lines = []
    for p in d.get("pending_confirmations") or []:
        where = f" to list {p['list_id']}" if p.get("list_id") else ""
        lines.append(
            f"pending: email subscribe{where} waits for the confirmation link"
            f" (mailed {p['requested_at']}); the status changes when it is clicked"
        )
    return lines


@consent.command("history", help="A profile's consent history, oldest first (C2).")
@click.argument("profile_id")
@account_option
@json_option
def consent_history(profile_id: str, account: str, as_json: bool) -> None:
    data = call(
        "consent", "GET", f"/accounts/{quote(account)}/profiles/{quote(profile_id)}/consent/history"
    )
    if not data["history"]:
        raise UnknownProfile(account, profile_id)
    cols = ("recorded_at", "slot", "action", "result", "status", "method", "act_id")
    emit(data, as_json, lambda d: table(d["history"], cols))


def _profile_path(account: str, profile_id: str, rest: str) -> str:
    return f"/accounts/{quote(account)}/profiles/{quote(profile_id)}/consent/{rest}"


@consent.command("receipts", help="A profile's consent receipts, oldest first (C15).")
@click.argument("profile_id")
@account_option
@json_option
def consent_receipts(profile_id: str, account: str, as_json: bool) -> None:
    data = call("consent", "GET", _profile_path(account, profile_id, "receipts"))
    cols = ("sequence", "receipt_id", "recorded_at", "channel", "status", "method", "act_id")
    emit(data, as_json, lambda d: table(d["receipts"], cols))


class ChainFails(click.ClickException):
    """C16: `consent verify` found a chain that fails (exit code 1)."""


def _failure_text(v: dict[str, Any]) -> str:
    f = v["failure"]
    where = f"receipt {f['sequence']} ({f['receipt_id']})" if f["sequence"] else f["receipt_id"]
    return f"{v['profile_id']}: FAILS at {where}: {f['reason']}"


@consent.command(
    "verify",
    help="Recompute a profile's receipt chain, or every chain of the account with --all"
    " (C16); names the first receipt that fails and exits 1 when one fails.",
)
@click.argument("profile_id", required=False)
@click.option("--all", "every", is_flag=True, help="Verify every profile of the account.")
@account_option
@json_option
def consent_verify(profile_id: str | None, every: bool, account: str, as_json: bool) -> None:
    if every == bool(profile_id):
        raise click.UsageError("name one PROFILE_ID, or pass --all")
    if every:
        data = call("consent", "GET", f"/accounts/{quote(account)}/consent/verify")

        def human(d: dict[str, Any]) -> str:
            result = "all verify" if d["ok"] else f"{len(d['failed'])} fail"
            head = (
                f"account {d['account_id']}: {d['profiles']} chains, {d['receipts']} receipts,"
                f" {result}"
            )
            return "\n".join([head, *(_failure_text(v) for v in d["failed"])])

    else:
        assert profile_id is not None
        data = call("consent", "GET", _profile_path(account, profile_id, "verify"))

        def human(d: dict[str, Any]) -> str:
            if d["ok"]:
                return f"{d['profile_id']}: {d['receipts']} receipts verify (head {d['head']})"
            return _failure_text(d)

    emit(data, as_json, human)
    if not data["ok"]:
        raise ChainFails("a receipt chain fails verification (C16)")


@consent.command("explain", help="May a message go to the profile now, and on which facts (C17).")
@click.argument("profile_id")
@click.option(
    "--channel",
    type=click.Choice(["email", "sms", "push"]),
    required=True,
    help="The channel the message would go on.",
)
@click.option(
    "--purpose",
    type=click.Choice(["marketing", "transactional"]),
    default="marketing",
    show_default=True,
    help="The message's purpose (SMS: transactional needs less consent, C5).",
)
@click.option("--list", "list_id", default=None, help="The list the message is sent for.")
@click.option("--client", "client_id", default=None, help="Sent on behalf of this client.")
@click.option("--user", "user_id", default=None, help="Sent on behalf of this user.")
@account_option
@json_option
def consent_explain(
    profile_id: str,
    channel: str,
    purpose: str,
    list_id: str | None,
    client_id: str | None,
    user_id: str | None,
    account: str,
    as_json: bool,
) -> None:
    query = {"channel": channel, "purpose": purpose}
    query |= {k: v for k, v in (("list_id", list_id), ("client_id", client_id),
                                ("user_id", user_id)) if v}  # fmt: skip
    path = _profile_path(account, profile_id, "explain") + "?" + urllib.parse.urlencode(query)
    data = call("consent", "GET", path)

    def human(d: dict[str, Any]) -> str:
        verdict = "may receive" if d["can_receive"] else f"may not receive: {d['blocked']}"
        lines = [f"{d['profile_id']} on {d['slot']}: {verdict}"]
        for c in d["facts"]["consents"]:
            r = c["receipt"]
            lines.append(
                f"  {c['slot']}: {c['status']}"
                + (f" (receipt {r['receipt_id']}, act {r['act_id']})" if r else " (no receipt)")
            )
        for sup in d["facts"]["suppressions"]:
            lines.append(f"  suppressed: {sup['reason']} since {sup['since']}")
        for scope in d["facts"]["opt_outs"]:
            lines.append(f"  opted out: {scope}")
        if d["facts"]["erased_hold"]:
            lines.append("  erase hold (P2)")
        return "\n".join(lines)

    emit(data, as_json, human)


# --- reviews -----------------------------------------------------------------------


@click.group(help="Alerts held in manual review (F5).")
def reviews() -> None:
    pass


@reviews.command("list", help="The account's alerts in review, oldest first.")
@account_option
@json_option
def reviews_list(account: str, as_json: bool) -> None:
    data = call("flow_executor", "GET", f"/accounts/{quote(account)}/reviews")
    cols = ("alert_id", "flow_id", "step_id", "profile_id", "held_at")
    emit(data, as_json, lambda d: table(d["in_review"], cols))


def _decide(decision: str) -> Callable[..., None]:
    @click.argument("alert_id")
    @account_option
    @json_option
    def run(alert_id: str, account: str, as_json: bool) -> None:
        data = call(
            "flow_executor",
            "POST",
            f"/accounts/{quote(account)}/reviews/{quote(alert_id)}/{decision}",
        )
        emit(data, as_json, lambda d: f"{d['alert_id']}: {d['status']}")

    return run


reviews.command("approve", help="Send an alert held in review.")(_decide("approve"))
reviews.command("reject", help="Drop an alert held in review.")(_decide("reject"))


# --- flows -------------------------------------------------------------------------


@click.group(help="Flow sending preferences (F8 quiet hours).")
def flows() -> None:
    pass


@flows.command(
    "sending-settings",
    help="Show the account's sending window, zone and email quiet hours; the options"
    " change them (e.g. --window 09:00-20:00 --timezone America/Chicago).",
)
@click.option("--window", help="The local sending window, HH:MM-HH:MM (end up to 24:00).")
@click.option("--timezone", "zone", help="The account's IANA zone (the last resort).")
@click.option(
    "--email-quiet-hours/--no-email-quiet-hours",
    default=None,
    help="Whether email steps keep quiet hours too.",
)
@account_option
@json_option
def flows_sending_settings(
    window: str | None,
    zone: str | None,
    email_quiet_hours: bool | None,
    account: str,
    as_json: bool,
) -> None:
    body: dict[str, Any] = {}
    if window is not None:
        start, sep, end = window.partition("-")
        if not sep:
            raise click.BadParameter("use HH:MM-HH:MM", param_hint="--window")
        body |= {"window_start": start.strip(), "window_end": end.strip()}
    if zone is not None:
        body["timezone"] = zone
    if email_quiet_hours is not None:
        body["email_quiet_hours"] = email_quiet_hours
    path = f"/accounts/{quote(account)}/sending-settings"
    data = call("flow_executor", "PUT" if body else "GET", path, body or None)

    def human(d: dict[str, Any]) -> str:
        email = "yes" if d["email_quiet_hours"] else "no"
        return (
            f"sending window     {d['window_start']}–{d['window_end']} in the recipient's zone\n"
            f"account zone       {d['timezone']}\n"
            f"email quiet hours  {email} (marketing SMS: always; transactional SMS: never)"
        )

    emit(data, as_json, human)


# --- recipients --------------------------------------------------------------------


@click.group(help="Internal alert recipients and their opt-in (A2–A4).")
def recipients() -> None:
    pass


@recipients.command("list", help="Every recipient with status and the actions naming them.")
@account_option
@json_option
def recipients_list(account: str, as_json: bool) -> None:
    data = call("alert_dispatcher", "GET", f"/accounts/{quote(account)}/alert-recipients")
    cols = ("email", "status", "confirmed_at", "disabled_at", "actions")
    emit(data, as_json, lambda d: table(d["recipients"], cols))


@recipients.command("resend", help="Send an unconfirmed recipient their confirmation again.")
@click.argument("email")
@account_option
@json_option
def recipients_resend(email: str, account: str, as_json: bool) -> None:
    data = call(
        "alert_dispatcher",
        "POST",
        f"/accounts/{quote(account)}/alert-recipients/{quote(email)}/resend",
    )
    emit(data, as_json, lambda d: f"confirmation mail queued for {d['email']}")


# --- dlq ---------------------------------------------------------------------------


def _range(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--to-offset", type=int, default=None, help="Last offset (inclusive).")(fn)
    fn = click.option("--from-offset", type=int, default=None, help="First offset.")(fn)
    fn = click.option("--partition", type=int, default=None, help="Only this partition.")(fn)
    return click.argument("topic")(fn)


def _settings() -> Any:
    from shared.settings import Settings

    return Settings()


def _dead_letters_of(reading: Any) -> Any:
    """Run a read of dead letters; an unknown topic is one line and exit 1."""
    from shared.messaging.dead_letters import NoSuchTopic

    try:
        return asyncio.run(reading)
    except NoSuchTopic as exc:
        raise click.ClickException(str(exc)) from None


@click.group(help="Dead letters (X1): list them, and re-publish them after a fix.")
def dlq() -> None:
    pass


@dlq.command("list", help="Dead letters of TOPIC (the source topic, e.g. consent-commands).")
@_range
@json_option
def dlq_list(
    topic: str,
    partition: int | None,
    from_offset: int | None,
    to_offset: int | None,
    as_json: bool,
) -> None:
    from shared.messaging.dead_letters import dead_letters

    letters = _dead_letters_of(dead_letters(_settings(), topic, partition, from_offset, to_offset))
    rows = [
        {
            "partition": x.partition,
            "offset": x.offset,
            "replayed": x.replayed,
            "source": f"{x.letter.source_topic}[{x.letter.source_partition}]"
            f"@{x.letter.source_offset}"
            if x.letter
            else None,
            "key": x.letter.key if x.letter else None,
            "error": (x.letter.error if x.letter else x.error or "")[:120],
        }
        for x in letters
    ]
    emit(
        rows,
        as_json,
        lambda r: table(r, ("partition", "offset", "replayed", "source", "key", "error")),
    )


@dlq.command(
    "replay",
    help="Re-publish TOPIC's dead letters to TOPIC, each once: a letter replayed before is"
    " skipped (recorded on the dlq-replays topic).",
)
@_range
@json_option
def dlq_replay(
    topic: str,
    partition: int | None,
    from_offset: int | None,
    to_offset: int | None,
    as_json: bool,
) -> None:
    from shared.messaging.dead_letters import replay

    report = _dead_letters_of(replay(_settings(), topic, partition, from_offset, to_offset))
    data = {
        "replayed": report.replayed,
        "already_replayed": report.already,
        "not_replayable": report.unreplayable,
    }
    emit(
        data,
        as_json,
        lambda d: (
            f"replayed {len(d['replayed'])}, skipped {len(d['already_replayed'])}"
            f" replayed before, {len(d['not_replayable'])} not replayable (truncated or"
            " unreadable)"
        ),
    )


# --- privacy -----------------------------------------------------------------------


@click.group(help="Data-subject requests (P1–P3): export or erase a person's data.")
def privacy() -> None:
    pass


def _person(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--phone", default=None, help="Every profile with this phone number.")(fn)
    fn = click.option("--email", default=None, help="Every profile with this email.")(fn)
    return click.option("--profile", "profile_id", default=None, help="The profile id.")(fn)


def _wait(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--timeout", type=float, default=120.0, help="Seconds to wait.")(fn)
    return click.option(
        "--wait/--no-wait", default=True, help="Wait until all four services are done."
    )(fn)


def _status_text(d: dict[str, Any]) -> str:
    rows = [{"service": s, **v} for s, v in d["services"].items()]
    head = f"{d['action']} {d['request_id']}: {d['status']}"
    return head + "\n" + table(rows, ("service", "status", "completed_at", "profile_ids"))


def _file(
    action: str, account: str, profile_id: str | None, email: str | None, phone: str | None
) -> str:
    if not (profile_id or email or phone):
        raise click.UsageError("name the person: --profile, --email or --phone")
    body = {"action": action, "profile_id": profile_id, "email": email, "phone_number": phone}
    answer = call(
        "consent",
        "POST",
        f"/accounts/{quote(account)}/privacy-requests",
        {k: v for k, v in body.items() if v},
    )
    return str(answer["request_id"])


def _status(account: str, request_id: str) -> dict[str, Any]:
    return call(
        "consent", "GET", f"/accounts/{quote(account)}/privacy-requests/{quote(request_id)}"
    )


def _await(account: str, request_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = _status(account, request_id)
        except ApiError:
            status = None  # not recorded yet: the request is still on its way
        if status is not None and status["status"] == "done":
            return status
        if time.monotonic() > deadline:
            raise click.ClickException(
                f"request {request_id} not done after {timeout:.0f}s;"
                f" check `consentflow privacy status {request_id}`"
            )
        time.sleep(0.3)


@privacy.command("export", help="Everything held about a person, as one JSON document (P3).")
@_person
@_wait
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the document to this file instead of standard output.",
)
@account_option
@json_option
def privacy_export(
    profile_id: str | None,
    email: str | None,
    phone: str | None,
    wait: bool,
    timeout: float,
    output: str | None,
    account: str,
    as_json: bool,
) -> None:
    request_id = _file("export", account, profile_id, email, phone)
    if not wait:
        emit(
            {"request_id": request_id, "status": "accepted"},
            as_json,
            lambda d: f"export {d['request_id']} accepted",
        )
        return
    status = _await(account, request_id, timeout)
    document = json.dumps(status["document"], indent=2, sort_keys=True)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(document + "\n")
        emit(status, as_json, lambda d: _status_text(d) + f"\ndocument written to {output}")
    else:
        click.echo(document)


@privacy.command(
    "erase",
    help="Erase a person in all four services (P2); keeps the audit"
    " trail anonymised and a keyed hash so they are not messaged again.",
)
@_person
@_wait
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@account_option
@json_option
def privacy_erase(
    profile_id: str | None,
    email: str | None,
    phone: str | None,
    wait: bool,
    timeout: float,
    yes: bool,
    account: str,
    as_json: bool,
) -> None:
    who = profile_id or email or phone
    if not who:
        raise click.UsageError("name the person: --profile, --email or --phone")
    if not yes and not click.confirm(f"Erase {who} in account {account}? This cannot be undone"):
        raise click.Abort()
    request_id = _file("erase", account, profile_id, email, phone)
    if not wait:
        emit(
            {"request_id": request_id, "status": "accepted"},
            as_json,
            lambda d: f"erase {d['request_id']} accepted",
        )
        return
    emit(_await(account, request_id, timeout), as_json, _status_text)


@privacy.command("status", help="Which services have done their part of a request.")
@click.argument("request_id")
@account_option
@json_option
def privacy_status(request_id: str, account: str, as_json: bool) -> None:
    emit(_status(account, request_id), as_json, _status_text)


GROUPS: dict[str, click.Group] = {
    "consent": consent,
    "reviews": reviews,
    "recipients": recipients,
    "dlq": dlq,
    "privacy": privacy,
    "flows": flows,
}


@click.group(help=__doc__)
def cli() -> None:
    pass


for _name, _group in GROUPS.items():
    cli.add_command(_group, _name)


def main(argv: list[str] | None = None) -> int:
    """Run an operator command; returns the exit code. The one `consentflow` command
    (tools/cli.py) runs it, with the same answers to every failure."""
    from tools.cli import main as consentflow

    return consentflow(argv)


if __name__ == "__main__":
    sys.exit(main())
