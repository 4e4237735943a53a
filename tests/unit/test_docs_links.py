"""The README and docs/ point only at what the repository has: every relative link (and
its #anchor) resolves, and every rule id the repository mentions (code, tests, README,
docs, contracts, `consentflow --help`) is defined in docs/rules.md's "Rule ids"."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from tools.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
RULE_ID = re.compile(r"\b([ICSFAXWP](?:[1-9][0-9]?)a?)\b")
# A test that proves a rule carries its id in its name: test_c11_…, test_x3a_…
TEST_RULE_ID = re.compile(r"\btest_([icsfaxwp][1-9][0-9]?a?)_")
TEXT_SUFFIXES = {".py", ".md", ".sql", ".toml", ".yaml", ".yml", ".html", ".json", ".sh", ".txt"}
SKIPPED_DIRS = {".git", "node_modules", "var", "build", "__pycache__"}


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


def repository_texts() -> Iterator[tuple[str, str]]:
    """(path, text) of every text file of the repository (no virtualenvs, no installed
    packages, no run data)."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".venv")]
        for name in files:
            path = Path(folder) / name
            if path.suffix in TEXT_SUFFIXES:
                yield path.relative_to(ROOT).as_posix(), path.read_text(errors="replace")


def defined_rule_ids() -> set[str]:
    """The ids docs/rules.md defines in its first section, "Rule ids"."""
    text = (ROOT / "docs" / "rules.md").read_text()
    section = text.split("\n## Rule ids\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"(?m)^- \*\*([A-Z][0-9]+a?)\*\* \S", section))


def test_every_rule_id_in_the_repository_is_defined_in_docs_rules() -> None:
    defined = defined_rule_ids()
    assert {"I1", "C1", "C17", "X3a", "P3"} <= defined
    sources = dict(repository_texts()) | {"consentflow --help": help_texts()}
    assert "tools/cli.py" in sources and "tests/conftest.py" in sources
    mentioned = {
        (name, rule)
        for name, text in sources.items()
        for rule in [
            *RULE_ID.findall(text),
            *(r[0].upper() + r[1:] for r in TEST_RULE_ID.findall(text)),
        ]
    }
    assert {rule for _, rule in mentioned} >= {"C14", "F5", "A2", "X1", "P1"}
    undefined = sorted((name, rule) for name, rule in mentioned if rule not in defined)
    assert undefined == [], f"define these in docs/rules.md, Rule ids: {undefined}"


def test_the_readme_fits_a_few_screens() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
