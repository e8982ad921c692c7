"""Keeping secrets out of output: broker URLs shown without passwords, known secrets masked."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_known: set[str] = set()
_lock = threading.Lock()


def register(secret: str | None) -> None:
    """Remember a secret (a password, an AWS key) so ``mask`` hides it wherever it appears."""
    if secret and len(secret) >= 3:
        with _lock:
            _known.add(secret)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ***."""
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """The URL with its password (and, for sqs://, the access key id) replaced by ***.

    Registers what it removes, so the same secret is masked in any later message too.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if parts.password is None and not (parts.scheme == "sqs" and parts.username):
        return url
    register(parts.password)
    user = parts.username or ""
    if parts.scheme == "sqs":
        register(user)
        user = MASK if user else ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    credentials = f"{user}:{MASK}" if parts.password is not None else user
    return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, parts.fragment))
