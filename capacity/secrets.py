"""Keeping secrets out of output: broker URLs shown without passwords, known secrets masked."""

from __future__ import annotations

import re
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


#: secrets recognised by their shape in text the tool did not write itself (a worker's banner
#: or argv, a broker's error): a URL's password, an AWS access key id (AWS's documented prefixes:
#: AKIA long-term, ASIA temporary, ...), the value after a secret-sounding name
_PATTERNS = (
    (re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@\s]+@"), rf"\g<1>{MASK}@"),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b"), MASK),
    (
        re.compile(
            r"(?i)((?:aws_)?secret(?:_access)?_?key|session_?token|passw(?:or)?d|requirepass|auth_?token)"
            r"(\W{0,3}?[=:\s]\s*['\"]?)([^\s'\",;&]{3,})"
        ),
        rf"\g<1>\g<2>{MASK}",
    ),
)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ***, and anything shaped like a secret
    (``_PATTERNS``): the one redaction for the tool's output and whatever it stores from others."""
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
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
    host = parts.netloc.rpartition("@")[2]  # as written, even a port urllib would refuse
    credentials = f"{user}:{MASK}" if parts.password is not None else user
    return urlunsplit((parts.scheme, f"{credentials}@{host}", parts.path, parts.query, parts.fragment))
