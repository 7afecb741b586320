"""Keep secrets out of spans: redacted URLs, and a scrub of every string sent.

Spans leave the machine for LightStep, so nothing in them may be a credential.
Two layers: the server span's ``http.url`` drops the values of token-like query
parameters and any user:password in a URL, and every string a span carries is
scrubbed of the configured secrets (``Settings.secrets()``) as the reporter
encodes it (app/tracing/report.py), whoever set the tag.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote

REDACTED = "[redacted]"

_SECRET_NAMES = re.compile(
    r"token|key|secret|passw|auth|credential|signature|^sig$|session|cookie",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_MAX_VALUE = 1024


def safe_url(path: str, query_string: str) -> str:
    """``path?query`` with token-like parameter values replaced by ``[redacted]``."""
    if not query_string:
        return path
    pairs = []
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        shown = REDACTED if _SECRET_NAMES.search(name) else quote(value, safe="")
        pairs.append(f"{quote(name, safe='')}={shown}")
    return f"{path}?{'&'.join(pairs)}"


class Scrubber:
    """Replaces each configured secret, and URL credentials, in a string.

    Values longer than ``max_length`` are cut (spans); ``None`` keeps them whole
    (log lines, whose tracebacks must stay readable).
    """

    def __init__(self, secrets, max_length: int | None = _MAX_VALUE):
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._max_length = max_length

    def __call__(self, value):
        if not isinstance(value, str):
            return value
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "://" in value:
            value = _URL_USERINFO.sub(REDACTED + "@", value)
        if self._max_length is not None and len(value) > self._max_length:
            value = value[: self._max_length] + "..."
        return value
