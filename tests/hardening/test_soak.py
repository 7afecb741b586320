"""A short run of tools/soak.py: mixed traffic through a training and a switch."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.e2e
def test_short_soak_has_no_unexpected_answer_and_sees_both_models():
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "soak.py"),
            "--seconds",
            "12",
            "--var",
            str(REPO / "var" / "tests" / "soak"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout[-3000:]
    summary = re.search(r"^requests (\d+) errors (\d+)$", result.stdout, re.M)
    assert summary is not None, result.stdout[-3000:]
    assert int(summary.group(1)) > 500
    assert summary.group(2) == "0"
    versions = re.search(r"^answers per model version: (.*)$", result.stdout, re.M)
    assert versions.group(1).count(":") == 2
