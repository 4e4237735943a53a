"""Structured JSON logs with correlation ids; emails and phone numbers masked (X4)."""

import logging
import re
import sys
from typing import Any

import structlog

# \w is Unicode-aware: non-ASCII local parts and IDN domains (`jürgen@bücher.de`) are
# addresses too, as are punycode ones (`xn--bcher-kva.de`).
_EMAIL = re.compile(r"([\w.%+'-])[\w.%+'!#$&*/=?^`{|}~-]*@([\w-]+(?:\.[\w-]+)+)")
# Phone numbers with or without `+`/`00`: a run of digits and separators holding at
# least 7 digits, not glued to a word (ids, UUIDs) and not shaped like a date or time.
_PHONE = re.compile(r"(?<![\w\-:.])(?:\+|\b)\d[\d \-().]{5,}\d(?![\w\-:])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}")


def _phone(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = [c for c in found if c.isdigit()]
    if len(digits) < 7 or _DATE.search(found):
        return found
    return "***" + "".join(digits[-2:])


def mask(text: str) -> str:
    """Mask email addresses (keep the first letter and the domain) and phone numbers
    (keep the last two digits), so logs never carry a full address or number."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(_phone, text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def _mask_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: _mask_value(v) for k, v in event_dict.items()}


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and stdlib logging to one JSON line per event on stderr."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _mask_processor,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(), foreign_pre_chain=shared_processors
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter at INFO would cost a line per message on the hot path.
    for noisy in ("aiokafka", "uvicorn.access", "aiosmtpd", "mail.log"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # Libraries that bring their own handler (uvicorn prints text to stderr and stops
    # propagation) would write lines that are not JSON and not masked.
    for name in ("uvicorn",):
        own = logging.getLogger(name)
        own.handlers.clear()
        own.propagate = True


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
