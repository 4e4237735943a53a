"""Composing and sending mail over SMTP (aiosmtplib), for every service that mails.

A sender keeps its connection open across mails and reopens it after the server drops
it. Every mail has a deterministic Message-ID (from what it is about and who it is for),
so a mail resent after a crash can be recognised as the same mail by the receiving side.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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

__all__ = ["SendResult", "SmtpSender", "compose", "email_error", "message_id"]


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


@dataclass(frozen=True)
class SendResult:
    """What the SMTP server said about one mail."""

    ok: bool
    permanent: bool = False
    error: str | None = None


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

    async def send(self, mail_from: str, rcpt_to: str, content: bytes) -> SendResult:
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
