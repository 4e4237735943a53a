"""X1, X4: every dead letter is logged (consumer, where it came from, the error), with
addresses masked, besides being counted in /metrics and published on `<topic>.dlq`."""

from __future__ import annotations

import structlog
from aiokafka import ConsumerRecord

from shared.logging import mask
from shared.messaging.batches import dead_letter


class _Outbox:
    def __init__(self) -> None:
        self.published: list[tuple[str, str | None, object]] = []

    def publish(self, topic: str, key: str | None, message: object) -> None:
        self.published.append((topic, key, message))


def test_x1_x4_a_dead_letter_is_logged_with_where_it_came_from() -> None:
    record = ConsumerRecord("consent-commands", 2, 41, 0, 0, b"p-1", b"{}", None, 1, 2, [])
    outbox = _Outbox()
    with structlog.testing.capture_logs() as logs:
        dead_letter(outbox, "consent.consent-commands", record, "'ada@example.com' is bad")  # type: ignore[arg-type]
    [(topic, _, _)] = outbox.published
    assert topic == "consent-commands.dlq"
    [line] = [entry for entry in logs if entry["event"] == "dead-lettered"]
    assert (line["topic"], line["partition"], line["offset"]) == ("consent-commands", 2, 41)
    assert line["consumer"] == "consent.consent-commands"
    assert "is bad" in line["error"]
    # The service's log processor masks every value (X4): the address does not survive.
    assert "ada@example.com" not in mask(line["error"])
