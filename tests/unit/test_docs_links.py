"""The README and docs/ point only at what the repository has: every relative link (and
its #anchor) resolves, and every rule id they or `consentflow --help` mention is defined
in docs/rules-index.md."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from tools.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
RULE_ID = re.compile(r"\b([ICSFAXWP](?:[1-9][0-9]?)a?)\b")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
    return {slug(m) for m in re.findall(r"(?m)^#{1,6} (.+)$", text)}


def links(page: Path) -> list[str]:
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        missing = not dest.exists() or ROOT not in (dest, *dest.parents)
        if missing or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
            broken.append(target)
    assert broken == [], f"{page.name}: {broken}"


def help_texts() -> str:
    """Every command's and option's help text of `consentflow`."""
    out: list[str] = []

    def walk(command: click.Command) -> None:
        out.extend(filter(None, (command.help, command.short_help)))
        out.extend(p.help or "" for p in command.params if isinstance(p, click.Option))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(cli)
    return "\n".join(out)


def test_every_rule_id_mentioned_is_defined_in_the_rules_index() -> None:
    index = (ROOT / "docs" / "rules-index.md").read_text()
    defined = set(re.findall(r"(?m)^- \*\*([A-Z][0-9]+a?)\*\* ", index))
    sources = {p.name: p.read_text() for p in PAGES} | {"--help": help_texts()}
    undefined = {
        (name, rule)
        for name, text in sources.items()
        for rule in RULE_ID.findall(text)
        if rule not in defined
    }
    assert undefined == set()


def test_the_readme_fits_a_few_screens() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
