"""Opt-in: the report against a real cluster named by ELASTICSEARCH_URL.

Read-only (the remedy is never run). Skipped, with the reason shown, when the
variable is not set for the test run.
"""

from __future__ import annotations

import os

import pytest

from app.settings import Settings
from app.watcher.checks import build_report

pytestmark = pytest.mark.skipif(
    not os.environ.get("ELASTICSEARCH_URL"),
    reason="set ELASTICSEARCH_URL (and ELASTICSEARCH_API_KEY / _CA_FILE if needed) "
    "to run the Watcher checks against a real cluster",
)


def test_real_cluster_report_has_the_documented_shape():
    settings = Settings.from_env()
    report = build_report(settings)

    assert report["status"] in ("green", "yellow", "red")
    assert report["elasticsearch"]["version"]
    assert report["watcher"]["state"] != "unknown"
    for finding in report["findings"]:
        assert set(finding) == {
            "code",
            "severity",
            "message",
            "nodes",
            "evidence",
            "remedy",
        }
    text = str(report)
    for secret in settings.secrets():
        assert secret not in text
