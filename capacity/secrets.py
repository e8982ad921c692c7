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
    query = _redact_query(parts.query)
    if query != parts.query:
        parts = parts._replace(query=query)
        url = urlunsplit(parts)
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


#: query parameters that carry a secret (redis-py's ?password=, tokens, keys)
_SECRET_PARAMETERS = re.compile(r"(?i)^(passw(?:or)?d|pass|token|auth_?token|secret|.*secret.*|.*_key|api_?key)$")


def _redact_query(query: str) -> str:
    """A URL's query with the values of secret-bearing parameters replaced (and registered)."""
    if not query:
        return query
    from urllib.parse import unquote

    parts = []
    for item in query.split("&"):
        name, sep, value = item.partition("=")
        if sep and value and _SECRET_PARAMETERS.match(unquote(name)):
            register(unquote(value))
            register(value)
            value = MASK
        parts.append(f"{name}{sep}{value}")
    return "&".join(parts)


#: environment variables holding a secret by name (AWS's, Redis's, tokens): their values are masked
_SECRET_NAMES = re.compile(r"(?i)(secret|passw(?:or)?d|token|_key$|^aws_access_key_id$|credential)")
#: environment variables that hold a URL whose password is a secret
_URL_NAMES = re.compile(r"(?i)(_url$|_dsn$|^capacity_timings$|^celery_result_backend$)")
#: a value from the environment is masked only from this length: "true" or "1" would mask too much
MIN_ENV_SECRET = 8


def register_environment(environ: dict[str, str] | None = None) -> None:
    """Every secret the environment holds, registered by value (#23): AWS keys and session tokens,
    passwords and tokens by the variable's name, and the passwords of URLs (broker, backend,
    timings). A worker that prints one bare (``SECRET SuperSecretAwsKey/abc+def``) has it masked
    in what the tool stores, not only when it looks like ``password=...``."""
    import os

    for name, value in (environ if environ is not None else os.environ).items():
        if not value:
            continue
        if _URL_NAMES.search(name) and "://" in value:
            redact_url(value)  # registers the URL's password and secret query parameters
        elif _SECRET_NAMES.search(name) and len(value) >= MIN_ENV_SECRET:
            register(value)


def register_options(options: dict[str, object]) -> None:
    """The secret-looking values of a JSON options object (transport options: a token, a password)."""
    for name, value in options.items():
        if isinstance(value, dict):
            register_options(value)
        elif isinstance(value, str) and _SECRET_NAMES.search(name) and len(value) >= 3:
            register(value)
        elif isinstance(value, str) and "://" in value:
            redact_url(value)
