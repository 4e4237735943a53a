"""Composing and sending mail over SMTP (aiosmtplib), for every service that mails.

A sender keeps its connection open across mails and reopens it after the server drops
it. Every mail has a deterministic Message-ID (from what it is about and who it is for),
so a mail resent after a crash can be recognised as the same mail by the receiving side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email import quoprimime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import formataddr, formatdate

import aiosmtplib

from shared.addresses import email_error
from shared.settings import Settings

__all__ = [
    "PreparedMail",
    "RenderedMail",
    "SendResult",
    "SmtpSender",
    "compose",
    "email_error",
    "message_id",
]


def message_id(*parts: str, domain: str) -> str:
    """A Message-ID that is the same every time for the same parts (A9), in the
    installation's own domain (`Settings.mail_domain`)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def compose(
    *,
    mail_from: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    msg_id: str,
    from_name: str | None = None,
    reply_to: str | None = None,
    unsubscribe_url: str | None = None,
) -> Message:
    """An email; with `unsubscribe_url` it carries `List-Unsubscribe` and RFC 8058's
    `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.

    Built with the `compat32` MIME classes: the modern `EmailMessage` parses every header
    it is given through the header registry, which cost about 1.5 ms per alert mail (the
    largest share of the dispatcher's CPU); these classes do the same job in a fifth of
    that. Non-ASCII headers are RFC 2047 encoded, bodies are UTF-8 quoted-printable, and
    every control character in a header value is made a space, so that nothing a tenant
    or a profile supplies can add a header or stop the mail from being built."""
    parts = [_text_part(text, "plain")]
    if html is not None:
        parts.append(_text_part(html, "html"))
    if len(parts) == 1:
        msg: Message = parts[0]
    else:
        for part in parts:
            del part["MIME-Version"]  # said once, at the top
        # A boundary of our own: the generator's default draws one at random and compiles
        # a regular expression per mail to check it; "=_" never occurs in quoted-printable.
        boundary = "=_" + hashlib.sha256(msg_id.encode()).hexdigest()[:32]
        msg = MIMEMultipart("alternative", boundary, parts, policy=_POLICY)
    from_name = header_text(from_name) if from_name else None
    mail_from, to = header_text(mail_from), header_text(to)
    msg["From"] = formataddr((from_name, mail_from)) if from_name else mail_from
    msg["To"] = to
    msg["Subject"] = _header(subject)
    msg["Message-ID"] = msg_id
    msg["Date"] = formatdate(usegmt=True)
    # RFC 3834: every mail the product sends is automated; auto-responders stay quiet.
    msg["Auto-Submitted"] = "auto-generated"
    if reply_to:
        msg["Reply-To"] = header_text(reply_to)
    if unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg


# Header lines fold only where RFC 5322 requires (998): a folded `List-Unsubscribe` URL
# comes back with a leading space from some parsers. Non-ASCII values are folded into
# short encoded-words by `_header` itself.
_POLICY = compat32.clone(max_line_length=998)


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, policy=_POLICY)
    charset = Charset("utf-8")
    charset.body_encoding = QP  # readable in the raw mail, unlike base64
    part.set_payload(body, charset)
    return part


def header_text(value: str) -> str:
    """`value` with every control character (C0, DEL, C1, and the Unicode line and
    paragraph separators) made a space: in a header any of them can end the line and
    start a header of the sender's choosing, or make the mail unbuildable."""
    return value.translate(_CONTROLS)


_CONTROLS = {c: " " for c in (*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0xFEFF)}


def _header(value: str) -> str:
    value = header_text(value)
    return value if value.isascii() else Header(value, "utf-8").encode()


# --- one mail to many recipients, written straight to bytes ------------------------------


class RenderedMail(Message):
    """A mail already written to bytes: `as_bytes()` gives them back as they are, and its
    top-level headers read as those of the `compose`d mail would (`mail["To"]`). Its body
    is only in the bytes."""

    def __init__(self, content: bytes, headers: list[tuple[str, str]]) -> None:
        super().__init__(_POLICY)
        self._headers = headers
        self._content = content

    def as_bytes(self, unixfrom: bool = False, policy: object = None) -> bytes:
        return self._content

    def __bytes__(self) -> bytes:
        return self._content

    def as_string(
        self, unixfrom: bool = False, maxheaderlen: int = 0, policy: object = None
    ) -> str:
        return self._content.decode("ascii", "surrogateescape")

    def __str__(self) -> str:
        return self.as_string()


class PreparedMail:
    """What `compose` would make of a mail sent to several recipients, done once: the
    sender's headers and the bodies up to where each recipient's copy starts to differ.
    `render` then writes one recipient's copy straight to bytes, the same bytes as
    `compose(...).as_bytes()` given the whole texts (a property test holds them equal).

    Why: building a `Message` and flattening it through the `email` generator folds
    every header through `email.header.Header` and walks the MIME tree again for each
    copy, about 0.5 ms a mail, most of the dispatcher's CPU per alert; here only the
    headers and body lines that differ per recipient are written per copy, and a header
    takes the generator's path only when it could fold or needs encoding."""

    def __init__(
        self,
        *,
        mail_from: str,
        subject: str,
        text: str,
        html: str | None = None,
        from_name: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        name = header_text(from_name) if from_name else None
        sender = header_text(mail_from)
        self._sender = [("From", formataddr((name, sender)) if name else sender)]
        self._subject = ("Subject", _header(subject))
        self._reply_to = [("Reply-To", header_text(reply_to))] if reply_to else []
        self._from_bytes = _fold(*self._sender[0])
        self._subject_bytes = _fold(*self._subject)
        self._reply_bytes = _fold(*self._reply_to[0]) if reply_to else b""
        self._text = _QpHead(text)
        self._html = _QpHead(html) if html is not None else None

    def render(
        self,
        *,
        to: str,
        msg_id: str,
        text_end: str = "",
        html_end: str = "",
        unsubscribe_url: str | None = None,
        date: str | None = None,
    ) -> RenderedMail:
        """One copy: `compose(to=to, msg_id=msg_id, text=text + text_end, html=html +
        html_end, unsubscribe_url=unsubscribe_url, ...)` as bytes."""
        to = header_text(to)
        date = date or formatdate(usegmt=True)
        headers = [*self._sender, ("To", to), self._subject, ("Message-ID", msg_id)]
        headers += [("Date", date), ("Auto-Submitted", "auto-generated"), *self._reply_to]
        tail = [
            self._from_bytes,
            _fold("To", to),
            self._subject_bytes,
            _fold("Message-ID", msg_id),
            _fold("Date", date),
            b"Auto-Submitted: auto-generated\n",
            self._reply_bytes,
        ]
        if unsubscribe_url:
            listed = f"<{unsubscribe_url}>"
            headers += [("List-Unsubscribe", listed), _ONE_CLICK]
            tail += [_fold("List-Unsubscribe", listed), _ONE_CLICK_BYTES]
        text = self._text.encoded(text_end)
        if self._html is None:
            headers[:0] = _SINGLE_PART
            out = [_SINGLE_PART_BYTES, *tail, b"\n", text]
        else:
            boundary = "=_" + hashlib.sha256(msg_id.encode()).hexdigest()[:32]
            content_type = f'multipart/alternative; boundary="{boundary}"'
            headers[:0] = [("Content-Type", content_type), ("MIME-Version", "1.0")]
            dash = f"--{boundary}\n".encode()
            out = [_fold("Content-Type", content_type), b"MIME-Version: 1.0\n", *tail, b"\n"]
            out += [dash, _PART_PLAIN, text, b"\n", dash, _PART_HTML]
            out += [self._html.encoded(html_end), f"\n--{boundary}--\n".encode()]
        return RenderedMail(b"".join(out), headers)


class _QpHead:
    """A body's quoted-printable form up to its last line break, written once; `encoded`
    adds the rest and a copy's own ending. Quoted-printable works line by line, so the
    lines before a line break encode the same whatever follows them (unless a CR ends
    them and the ending starts with LF: one CRLF, encoded whole)."""

    def __init__(self, head: str) -> None:
        self._raw = raw = _qp_input(head)
        cut = max(raw.rfind("\n"), raw.rfind("\r")) + 1
        self._done = quoprimime.body_encode(raw[:cut]).encode("ascii") if cut else b""
        self._rest = raw[cut:]
        self._open_cr = raw.endswith("\r")

    def encoded(self, end: str) -> bytes:
        end = _qp_input(end)
        if self._open_cr and end.startswith("\n"):
            return quoprimime.body_encode(self._raw + end).encode("ascii")
        rest = self._rest + end
        return self._done + (quoprimime.body_encode(rest).encode("ascii") if rest else b"")


def _qp_input(body: str) -> str:
    """`body` as `Message.set_payload(body, utf-8 charset)` hands it to the
    quoted-printable encoder: its UTF-8 bytes, one character per byte."""
    return body.encode("utf-8", "surrogateescape").decode("latin1")


def _fold(name: str, value: str) -> bytes:
    """The header line the `compat32` generator writes for `value` (`_POLICY`): a value
    that is printable ASCII, fits the line and ends in no space comes out as it is;
    any other takes the generator's own folding."""
    if (
        value.isascii()
        and value.isprintable()
        and not value.endswith(" ")
        and len(name) + len(value) <= _FITS
    ):
        return f"{name}: {value}\n".encode("ascii")
    return _POLICY.fold_binary(name, value)


_FITS = 998 - 2  # "Name: value" within max_line_length (the policy's, below)
_ONE_CLICK = ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
_ONE_CLICK_BYTES = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\n"
_SINGLE_PART = [
    ("MIME-Version", "1.0"),
    ("Content-Type", 'text/plain; charset="utf-8"'),
    ("Content-Transfer-Encoding", "quoted-printable"),
]
_SINGLE_PART_BYTES = b"".join(f"{k}: {v}\n".encode() for k, v in _SINGLE_PART)
_PART_PLAIN = (
    b'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n'
)
_PART_HTML = (
    b'Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n'
)


@dataclass(frozen=True)
class SendResult:
    """What the SMTP server said about one mail; `withheld`: the caller's `before_data`
    stopped it before DATA, the server has not taken it."""

    ok: bool
    permanent: bool = False
    error: str | None = None
    withheld: bool = False


_WITHHELD = SendResult(False, error="withheld before DATA", withheld=True)


# Failures that leave the connection unusable: it is closed and the next mail opens one.
_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError, TimeoutError)
# 421: the server is closing the connection (RFC 5321 3.8).
_CLOSING = 421


class _Unavailable(Exception):
    """The relay refused the connection or the login."""


class SmtpSender:
    """One SMTP connection to the relay, kept open across mails and batches and reopened
    after the server dropped it or said it is closing (421).

    `send` never raises: it classifies SMTP answers (2xx ok, 5xx permanent, 4xx and lost
    connections transient, A9), and a mail the client refuses to send (a malformed
    address, say) as permanently failed with the reason. The envelope is sent command by
    command, so that a kept connection the server has dropped meanwhile is noticed at
    `MAIL FROM`, before the server could have taken the mail: then the mail goes out at
    once on a new connection instead of waiting for a retry. A refused envelope or mail
    is reset (`RSET`) and the connection kept; only a lost connection or a 421 costs a
    new one."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self.connects = 0  # connections opened so far (reuse shows in it)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.smtp_timeout_s,
            start_tls=s.smtp_starttls,
            use_tls=False,
        )
        self.connects += 1
        await client.connect()
        if s.smtp_username:
            password = s.smtp_password.get_secret_value() if s.smtp_password else ""
            await client.login(s.smtp_username, password)
        return client

    async def _open(self) -> aiosmtplib.SMTP:
        self._drop()
        try:
            self._client = await self._connect()
        except aiosmtplib.SMTPResponseException as exc:
            # A refused greeting or login is the relay's state, not the mail's: retried.
            self._drop()
            raise _Unavailable(f"{exc.code} {exc.message}") from exc
        return self._client

    async def send(
        self,
        mail_from: str,
        rcpt_to: str,
        content: bytes,
        before_data: Callable[[], Awaitable[bool]] | None = None,
    ) -> SendResult:
        """Send one mail. `before_data` runs once the envelope is accepted, before DATA
        (the command after which the server takes the mail): the caller waits there for
        what must happen before the server takes another mail, while the envelope's
        round trips go on meanwhile; False withholds the mail (the envelope is reset)."""
        try:
            kept = self._client is not None and self._client.is_connected
            client = self._client if kept and self._client else await self._open()
            try:
                await client.mail(mail_from)
            except _LOST:
                if not kept:
                    raise
                # The kept connection was dropped while idle: nothing of this mail
                # reached the server, so it goes out now on a new connection.
                client = await self._open()
                await client.mail(mail_from)
            await client.rcpt(rcpt_to)
            if before_data is not None and not await before_data():
                await self._reset()
                return _WITHHELD
            await client.data(content)
            return SendResult(True)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == _CLOSING:
                self._drop()
            else:
                await self._reset()
            error = f"{exc.code} {exc.message}"
            return SendResult(False, permanent=exc.code >= 500, error=error)
        except _Unavailable as exc:
            return SendResult(False, error=str(exc))
        except _LOST as exc:
            self._drop()
            return SendResult(False, error=f"{type(exc).__name__}: {exc}")
        except (ValueError, TypeError, UnicodeError, aiosmtplib.SMTPNotSupported) as exc:
            # The mail itself cannot be sent (an address the client refuses, a non-ASCII
            # address to a server without SMTPUTF8): it fails, and only it.
            await self._reset()
            return SendResult(False, permanent=True, error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # one mail must never stop the worker
            self._drop()
            return SendResult(False, error=f"{type(exc).__name__}: {exc}")

    async def _reset(self) -> None:
        """End a refused transaction and keep the connection (or drop it if even that
        fails)."""
        try:
            if self._client is not None and self._client.is_connected:
                await self._client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._drop()

    def _drop(self) -> None:
        """Forget a connection that failed, without a `QUIT` that could only wait."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        """Say goodbye (`QUIT`) and close, when the worker stops."""
        client, self._client = self._client, None
        if client is not None:
            try:
                if client.is_connected:
                    await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
