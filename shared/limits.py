"""Size caps on what enters and leaves a service (one big message must never jam a topic).

An input record larger than `MAX_INPUT_BYTES` is dead-lettered with the reason before it
is parsed. An output larger than `MAX_OUTPUT_BYTES` never enters the outbox: a dead
letter naming its size goes to `<topic>.dlq` instead. The output cap sits below the
producer's request limit (1 MiB, and Apache Kafka's default `message.max.bytes`), so the
outbox relay never holds a row the broker would refuse; a 5 MB event used to become a
5 MB alert request that the relay retried forever, holding every account's alerts.
"""

from __future__ import annotations

import base64

MAX_INPUT_BYTES = 512 * 1024
MAX_OUTPUT_BYTES = 900 * 1024
# What a dead letter keeps of an oversized original: enough to find and fix the producer.
MAX_DEAD_LETTER_ORIGINAL = 256 * 1024


def too_large(size: int, limit: int) -> str | None:
    """The reason a payload of `size` bytes is refused, or None when it fits."""
    if size <= limit:
        return None
    return f"payload of {size} bytes is over the limit of {limit} bytes"


def kept_original(value: bytes) -> tuple[str, bool]:
    """The base64 of what a dead letter keeps of `value`, and whether it was cut."""
    return (
        base64.b64encode(value[:MAX_DEAD_LETTER_ORIGINAL]).decode(),
        len(value) > MAX_DEAD_LETTER_ORIGINAL,
    )
