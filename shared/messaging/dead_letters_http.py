"""Dead letters over HTTP (X1), scoped by API key (X5): a service serves the dead letters
of the input topics it consumes, as `consentflow dlq list|replay` reads and replays them
from Kafka (`shared/messaging/dead_letters.py`), but only an account's own: letters
whose original message names that account (`account_id`). A letter whose account cannot
be read (not JSON, no account) is left to the command line, which reads every letter of
a topic."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.contracts import topics
from shared.http import error, iso
from shared.messaging import dead_letters as dlq

if TYPE_CHECKING:  # the runtime builds the API reference, which reads SERVED_BY
    from shared.runtime import Runtime

PATH = "/accounts/{account_id}/dead-letters/{topic}"
# Which service serves the dead letters of which input topic: one that consumes it.
SERVED_BY: dict[str, tuple[str, ...]] = {
    "consent": (topics.CONSENT_COMMANDS, topics.SMS_INBOUND, topics.PRIVACY_REQUESTS),
    "suppression": (topics.SUPPRESSION_COMMANDS,),
    "flow_executor": (topics.PROFILE_EVENTS, topics.FLOW_DEFINITIONS, topics.REVIEW_DECISIONS),
}
MOST = 1000
PREVIEW = 400


def original_of(letter: dlq.Letter) -> bytes | None:
    """The dead message's bytes as received (None when the record is no letter)."""
    if letter.letter is None:
        return None
    try:
        return base64.b64decode(letter.letter.original)
    except ValueError:
        return None


def account_of(letter: dlq.Letter) -> str | None:
    """The account the dead message names in `account_id`, if it names one."""
    raw = original_of(letter)
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    value = data.get("account_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def letter_view(letter: dlq.Letter) -> dict[str, Any]:
    """One dead letter as the API shows it: where it came from, why, and a preview."""
    assert letter.letter is not None
    raw = original_of(letter) or b""
    return {
        "partition": letter.partition,
        "offset": letter.offset,
        "source_partition": letter.letter.source_partition,
        "source_offset": letter.letter.source_offset,
        "key": letter.letter.key,
        "consumer": letter.letter.consumer,
        "error": letter.letter.error,
        "occurred_at": iso(letter.letter.occurred_at),
        "replayed": letter.replayed,
        "replayable": letter.replayable,
        "original_preview": raw[:PREVIEW].decode("utf-8", "replace"),
    }


def dead_letter_routes(rt: Runtime, service: str) -> list[Route]:
    """`GET …/dead-letters/{topic}` and `POST …/dead-letters/{topic}/replay` for the
    topics `service` serves (`SERVED_BY`)."""
    served = SERVED_BY[service]

    def endpoint(
        act: Callable[[Request, str, str], Awaitable[Response]],
    ) -> Callable[[Request, str], Awaitable[Response]]:
        async def handler(request: Request, account: str) -> Response:
            topic = request.path_params["topic"]
            if topic not in served:
                return error(404, f"this service keeps dead letters of {', '.join(served)}")
            return await act(request, account, topic)

        handler.__name__ = act.__name__
        handler.__doc__ = act.__doc__
        return handler

    async def dead_letters(request: Request, account: str, topic: str) -> Response:
        """The account's dead letters of `topic`, oldest first (at most 1000): where each
        came from, why it was refused, whether it was replayed, and its first bytes."""
        try:
            letters = await dlq.dead_letters(rt.settings, topic)
        except dlq.NoSuchTopic:
            letters = []  # no dead-letter topic yet: nothing was ever refused
        own = [x for x in letters if account_of(x) == account][-MOST:]
        return JSONResponse(
            {"account_id": account, "topic": topic, "dead_letters": [letter_view(x) for x in own]}
        )

    async def replay(request: Request, account: str, topic: str) -> Response:
        """Re-publish the account's dead letters of `topic` to it, each once (a letter
        replayed before is skipped)."""
        try:
            done = await dlq.replay(rt.settings, topic, only=lambda x: account_of(x) == account)
        except dlq.NoSuchTopic:
            done = dlq.ReplayReport([], [], [])
        return JSONResponse(
            {
                "account_id": account,
                "topic": topic,
                "replayed": done.replayed,
                "already_replayed": done.already,
                "not_replayable": done.unreplayable,
            }
        )

    guarded = rt.auth.guarded
    return [
        Route(PATH, guarded(endpoint(dead_letters)), methods=["GET"]),
        Route(PATH + "/replay", guarded(endpoint(replay)), methods=["POST"]),
    ]
