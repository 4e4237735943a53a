"""Dead letters over HTTP show an account only its own (X5): the letter's original
message must name the account; a letter whose account cannot be read is left to the
command line."""

from __future__ import annotations

import base64
import json

from shared.contracts import DeadLetter
from shared.messaging.dead_letters import Letter
from shared.messaging.dead_letters_http import SERVED_BY, account_of, letter_view


def letter(original: bytes) -> Letter:
    dead = DeadLetter(
        consumer="consent",
        source_topic="consent-commands",
        source_partition=1,
        source_offset=7,
        key="ada",
        original=base64.b64encode(original).decode(),
        original_size=len(original),
        error="action: Input should be 'subscribe', 'unsubscribe' or 'resubscribe'",
    )
    return Letter(0, 3, dead)


def test_x1_x5_a_dead_letter_belongs_to_the_account_its_message_names() -> None:
    assert account_of(letter(json.dumps({"account_id": "acme", "action": "x"}).encode())) == "acme"
    assert account_of(letter(b'{"account_id": 42}')) is None
    assert account_of(letter(b"not json")) is None
    assert account_of(letter(b'["acme"]')) is None
    assert account_of(Letter(0, 4, None, "not a dead letter")) is None


def test_x1_a_dead_letter_as_shown_keeps_its_reason_source_and_first_bytes() -> None:
    view = letter_view(letter(b'{"account_id": "acme", "action": "teleport"}' + b" " * 1000))
    assert view["error"].startswith("action:")
    assert (view["source_partition"], view["source_offset"], view["key"]) == (1, 7, "ada")
    assert view["original_preview"].startswith('{"account_id": "acme"')
    assert len(view["original_preview"]) == 400
    assert view["replayable"] and not view["replayed"]


def test_x1_every_input_topic_has_one_service_serving_its_dead_letters() -> None:
    from shared.contracts import topics

    served = [t for topics_ in SERVED_BY.values() for t in topics_]
    assert sorted(served) == sorted(topics.INPUT_TOPICS)
