"""The admin token check shared by every admin endpoint."""

from __future__ import annotations

import hmac

from flask import current_app, request

from app.errors import ApiError


def require_admin() -> None:
    """Raise unless the request carries ``Authorization: Bearer <ADMIN_TOKEN>``."""
    expected = current_app.config["SETTINGS"].admin_token
    if not expected:
        raise ApiError(
            403,
            "admin_disabled",
            "Admin endpoints are disabled because no ADMIN_TOKEN is configured; "
            "set ADMIN_TOKEN in the service's environment to enable them.",
        )

    header = request.headers.get("Authorization", "")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not supplied.strip():
        raise ApiError(
            401,
            "missing_token",
            "This endpoint needs an 'Authorization: Bearer <ADMIN_TOKEN>' header.",
            headers={"WWW-Authenticate": 'Bearer realm="admin"'},
        )

    # compare_digest takes the same time wherever the strings differ.
    if not hmac.compare_digest(supplied.strip().encode(), expected.encode()):
        raise ApiError(403, "invalid_token", "The admin token is not valid.")
