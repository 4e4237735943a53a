"""X9: the published AsyncAPI documents pass the official AsyncAPI parser
(`@asyncapi/parser` from npm, run by Node), so a consumer can generate a client from them.

`.ci/run` installs the parser into `tests/contract/asyncapi/node_modules`; when it is
missing (a fresh checkout) the fixture installs it the same way, pinned by the
`package.json` beside the script.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import contracts_gen as contracts

HERE = Path(__file__).resolve().parent / "asyncapi"


@pytest.fixture(scope="module")
def parser() -> Path:
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "Node and npm are needed for the AsyncAPI parser (apt-get nodejs npm)"
    if not (HERE / "node_modules" / "@asyncapi" / "parser").is_dir():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=HERE,
            check=True,
            timeout=600,
        )
    return HERE / "validate.mjs"


def test_x9_every_asyncapi_document_passes_the_official_parser(parser: Path) -> None:
    docs = sorted((contracts.DEFAULT_DIR / "asyncapi").glob("*.asyncapi.json"))
    assert len(docs) == len(contracts.SERVICES)
    run = subprocess.run(
        ["node", str(parser), *map(str, docs)], capture_output=True, text=True, timeout=120
    )
    results = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(docs), run.stderr
    errors = {Path(r["path"]).name: r["errors"] for r in results if r["errors"] or not r["parsed"]}
    assert errors == {}
    assert run.returncode == 0


def test_x9_parser_reports_errors_it_finds(parser: Path, tmp_path: Path) -> None:
    """The check can fail: an OpenAPI-style discriminator (what the documents carried
    before) is an error to the parser."""
    doc = contracts.asyncapi("suppression")
    schema = next(iter(doc["components"]["schemas"].values()))
    schema["discriminator"] = {"propertyName": "type", "mapping": {}}
    path = tmp_path / "broken.asyncapi.json"
    path.write_text(json.dumps(doc))
    run = subprocess.run(["node", str(parser), str(path)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "discriminator" in run.stdout
