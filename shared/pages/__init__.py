"""What a person sees: pages and mail bodies rendered from Jinja2 templates in the
account's language and branding (W1, W3).

Every string a person reads is in a template or marked with `N_` in `texts.py`, and is
translated through the gettext catalogues under `locale/` (compiled `.mo` files are kept
next to the `.po` sources so that an editable install finds them). One stylesheet,
served by every service that has pages, and no JavaScript: every act is a form POST.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

HERE = Path(__file__).parent
LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
STYLESHEET_PATH = "/assets/consentflow.css"
DEFAULT_ACCENT = "#1f5fbf"


@dataclass(frozen=True)
class Brand:
    """How an account presents itself on pages and in mails (W1)."""

    name: str
    logo_url: str | None = None
    accent: str = DEFAULT_ACCENT
    support_email: str | None = None

    @property
    def on_accent(self) -> str:
        """Black or white, whichever reads better on the accent colour (WCAG contrast)."""
        return (
            "#000000"
            if contrast(self.accent, "#000000") >= contrast(self.accent, "#ffffff")
            else "#ffffff"
        )


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """The WCAG 2.1 contrast ratio of two `#rrggbb` colours."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def colour_error(value: str) -> str | None:
    """Why `value` is not a `#rrggbb` colour, or None."""
    digits = value[1:] if value.startswith("#") else ""
    if len(digits) != 6 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        return "accent_colour must be a colour like #1f5fbf"
    return None


def negotiate(accept_language: str | None, account_language: str | None = None) -> str:
    """The account's language when it sets one, else the first language in the browser's
    `Accept-Language` (by quality) that we have, else English (W1)."""
    if account_language in LANGUAGES:
        return account_language  # type: ignore[return-value]
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, i, tag.strip().lower().split("-")[0]))
    for quality, _, lang in sorted(ranked):
        if quality < 0 and lang in LANGUAGES:
            return lang
    return DEFAULT_LANGUAGE


def catalogue(locale_dir: Path, lang: str) -> NullTranslations:
    """The compiled gettext catalogue for `lang` under `locale_dir` (English is the
    source language: no catalogue)."""
    if lang == DEFAULT_LANGUAGE:
        return NullTranslations()
    return Translations.load(str(locale_dir), [lang], domain="messages")


def template_environment(templates_dir: Path, translations: NullTranslations) -> Environment:
    """A Jinja2 environment over `templates_dir`, escaping HTML, with `translations`
    installed for `{% trans %}` and `_()`: the pages' and the console's alike."""
    env = Environment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    return env


@functools.cache
def translations(lang: str) -> NullTranslations:
    """The pages' compiled catalogue for `lang`."""
    return catalogue(HERE / "locale", lang)


@functools.cache
def environment(lang: str) -> Environment:
    """One Jinja2 environment per language for the pages and mails."""
    return template_environment(HERE / "templates", translations(lang))


def gettext(lang: str, message: str, **values: Any) -> str:
    """`message` in `lang`, with `%(name)s` placeholders filled in."""
    text = translations(lang).gettext(message)
    return text % values if values else text


def render(template: str, lang: str, brand: Brand, **context: Any) -> str:
    """A template rendered in `lang` with the account's branding."""
    return (
        environment(lang)
        .get_template(template)
        .render(lang=lang, brand=brand, stylesheet=STYLESHEET_PATH, **context)
    )


def page(template: str, lang: str, brand: Brand, status: int = 200, **context: Any) -> HTMLResponse:
    """An HTML page answer; pages are never cached (they show current state)."""
    return HTMLResponse(
        render(template, lang, brand, **context),
        status_code=status,
        headers={"cache-control": "no-store", "content-language": lang},
    )


def language_of(request: Request, account_language: str | None = None) -> str:
    return negotiate(request.headers.get("accept-language"), account_language)


def stylesheet_route() -> Route:
    """The one stylesheet every page links."""
    css = (HERE / "static" / "consentflow.css").read_text()

    async def stylesheet(_: Request) -> Response:
        return Response(
            css, media_type="text/css", headers={"cache-control": "public, max-age=3600"}
        )

    return Route(STYLESHEET_PATH, stylesheet, methods=["GET"])


@dataclass(frozen=True)
class ButtonMail:
    """A mail whose point is one button (W3): rendered as text and as HTML."""

    subject: str
    text: str
    html: str


def button_mail(
    lang: str,
    brand: Brand,
    *,
    subject: str,
    paragraphs: list[str],
    button: str,
    url: str,
    footnote: str | None = None,
) -> ButtonMail:
    """Both bodies of a one-button mail; the strings are already in `lang`."""
    context = {
        "title": subject,
        "paragraphs": paragraphs,
        "button": button,
        "url": url,
        "footnote": footnote,
    }
    return ButtonMail(
        subject=subject,
        text=render("mail/confirm.txt", lang, brand, **context),
        html=render("mail/confirm.html", lang, brand, **context),
    )
