"""No credential leaves in a span."""

from __future__ import annotations

from app.tracing.redact import Scrubber, safe_url


def test_token_like_query_values_are_redacted():
    url = safe_url("/api/v1/predict", "api_key=k1&access_token=t2&limit=5&sig=s3")

    assert url == (
        "/api/v1/predict?api_key=[redacted]&access_token=[redacted]&limit=5"
        "&sig=[redacted]"
    )


def test_plain_query_is_kept_and_no_query_means_bare_path():
    assert safe_url("/api/v1/model", "") == "/api/v1/model"
    assert safe_url("/api/v1/train/ab", "verbose=1") == "/api/v1/train/ab?verbose=1"


def test_scrubber_removes_configured_secrets_and_url_passwords():
    scrub = Scrubber(["hunter2-admin", "es-pass"])

    assert scrub("Bearer hunter2-admin") == "Bearer [redacted]"
    assert scrub("GET https://elastic:es-pass@10.0.0.1:9200/") == (
        "GET https://[redacted]@10.0.0.1:9200/"
    )
    assert scrub("https://user:other@host/") == "https://[redacted]@host/"
    assert scrub(42) == 42


def test_scrubber_cuts_very_long_values():
    assert Scrubber([])("x" * 5000) == "x" * 1024 + "..."
