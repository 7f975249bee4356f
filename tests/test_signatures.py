"""Webhook signature verification (bad-inputs rows 2-7)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app import signatures

BODY = b'{"action":"opened","number":1}'
SECRET = b"s3cret"


def test_github_documented_vector_verifies() -> None:
    # Row 5: GitHub's "Validating webhook deliveries" example.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signatures.sign(b"Hello, World!", b"It's a Secret to Everybody") == expected
    assert signatures.verify(b"Hello, World!", expected, [b"It's a Secret to Everybody"])


@pytest.mark.parametrize(
    ("body", "header"),
    [
        pytest.param(BODY, signatures.sign(BODY, b"other"), id="other-secret"),
        pytest.param(BODY + b" ", signatures.sign(BODY, SECRET), id="body-changed-1-byte"),
        pytest.param(BODY, signatures.sign(BODY, SECRET)[len("sha256=") :], id="bare-hex"),
        pytest.param(BODY, "sha256=zzzz", id="garbage"),
        pytest.param(BODY, "", id="empty"),
        pytest.param(
            BODY,
            "sha1=" + hmac.new(SECRET, BODY, hashlib.sha1).hexdigest(),
            id="legacy-sha1-only",
        ),
    ],
)
def test_bad_signatures_are_refused(body: bytes, header: str) -> None:
    # Rows 2, 3, 4.
    assert not signatures.verify(body, header, [SECRET])


def test_no_secret_configured_verifies_nothing() -> None:
    assert not signatures.verify(BODY, signatures.sign(BODY, b""), [])


def test_rotation_accepts_both_then_only_the_new() -> None:
    # Row 7.
    old, new = b"old-secret", b"new-secret"
    for secret in (old, new):
        assert signatures.verify(BODY, signatures.sign(BODY, secret), [new, old])
    assert not signatures.verify(BODY, signatures.sign(BODY, old), [new])


def test_raw_bytes_with_unicode_and_control_characters() -> None:
    # Row 6: the signature is over the raw bytes, whatever JSON re-serialisation would do.
    body = '{"title":"caf\\u00e9 \u2603 \\u0000 \t"}'.encode()
    assert signatures.verify(body, signatures.sign(body, SECRET), [SECRET])
