"""The request id: nginx's ``$request_id``, or a trusted caller's ``X-Request-Id``.

nginx decides which one a request carries (``deploy/nginx/logreg/server.conf``)
and passes it as the ``X-Request-Id`` header. The app applies the same rule
again, so that a request that did not come through nginx (the test client, a
direct call to a worker) still gets a well-formed id, and a made-up one cannot
put arbitrary text into the logs.
"""

from __future__ import annotations

import re
import secrets

from flask import g, request

HEADER = "X-Request-Id"

# The same rule as nginx's map: short, and nothing a log parser could trip on.
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def is_sane(value: str | None) -> bool:
    return bool(value) and _SANE.fullmatch(value) is not None


def new_id() -> str:
    """32 hex digits, the shape of nginx's own ``$request_id``."""
    return secrets.token_hex(16)


def current() -> str:
    """This request's id, chosen on first use and kept for the request."""
    chosen = g.get("request_id")
    if chosen is None:
        incoming = request.headers.get(HEADER)
        chosen = incoming if is_sane(incoming) else new_id()
        g.request_id = chosen
    return chosen
