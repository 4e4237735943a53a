"""P2: the keyed hashes an erase keeps of a person's email and phone number, and X6 for
their secret."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.privacy import secret_problem, subject_hash, subject_hashes
from shared.settings import Settings

SECRET = "k" * 40
locals_ = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._", min_size=1, max_size=20)


@given(local=locals_, pad=st.sampled_from(["", " ", "\t", "  "]))
def test_p2_email_hash_ignores_case_and_surrounding_space(local: str, pad: str) -> None:
    email = f"{local}@Example.org"
    assert subject_hash(SECRET, "email", pad + email.upper() + pad) == subject_hash(
        SECRET, "email", email.lower()
    )


@given(digits=st.text(alphabet="0123456789", min_size=6, max_size=14))
def test_p2_phone_hash_ignores_formatting(digits: str) -> None:
    spaced = "+" + " ".join(digits[i : i + 3] for i in range(0, len(digits), 3))
    assert subject_hash(SECRET, "phone", spaced) == subject_hash(SECRET, "phone", "+" + digits)


def test_p2_hash_is_keyed_not_a_bare_digest() -> None:
    import hashlib

    email = "ada@example.com"
    keyed = subject_hash(SECRET, "email", email)
    assert keyed != subject_hash("x" * 40, "email", email)
    assert keyed not in {
        hashlib.sha256(email.encode()).hexdigest(),
        hashlib.sha256(f"email:{email}".encode()).hexdigest(),
    }
    assert subject_hash(SECRET, "email", "1") != subject_hash(SECRET, "phone", "1")
    assert subject_hashes(SECRET, None, " ") == []


def test_x6_privacy_hash_secret_must_be_long_and_not_well_known() -> None:
    assert secret_problem(Settings(privacy_hash_secret=None)) is not None
    assert "32 bytes" in (secret_problem(Settings(privacy_hash_secret=SecretStr("short"))) or "")
    assert secret_problem(Settings(privacy_hash_secret=SecretStr(SECRET))) is None


def test_x6_service_refuses_to_start_without_privacy_hash_secret() -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() != "PRIVACY_HASH_SECRET"}
    env |= {"LINK_SECRET": secrets.token_hex(32), "API_KEYS": "acme:" + secrets.token_hex(16)}
    proc = subprocess.run(
        [sys.executable, "-m", "services.suppression"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert b"PRIVACY_HASH_SECRET" in proc.stderr + proc.stdout


@given(sizes=st.lists(st.integers(0, 400), min_size=1, max_size=4))
def test_p3_export_part_always_fits_one_message(sizes: list[int]) -> None:
    from shared.privacy_requests import fit

    data = {f"t{i}": [{"row": "x" * 50}] * n for i, n in enumerate(sizes)}
    out = fit(data, limit=5_000)
    assert out is not None
    import json

    assert len(json.dumps(out)) <= 5_000 + 200
    if out.get("truncated"):
        assert out["counts"] == {k: len(v) for k, v in data.items()}
    else:
        assert out == data
