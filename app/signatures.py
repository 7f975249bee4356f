"""GitHub webhook signatures (X-Hub-Signature-256): HMAC-SHA256 over the raw body."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(body: bytes, secret: bytes) -> str:
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str, secrets: list[bytes]) -> bool:
    """True when the header is a sha256 signature of the body under any configured secret
    (two during a rotation). Every secret is tried, with constant-time comparisons."""
    if not header.startswith(PREFIX) or not secrets:
        return False
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(body, secret), header)
    return matched
