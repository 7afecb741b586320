"""`python -m app watcher-check`: the report on stdout, the status as exit code."""

from __future__ import annotations

import json

import pytest

from app.watcher.cli import watcher_check_main
from tests.watcher.conftest import ES_PASSWORD


@pytest.fixture
def env_for(monkeypatch):
    def apply(double):
        monkeypatch.setenv("ELASTICSEARCH_URL", double.url_with_auth())
        monkeypatch.setenv("ELASTICSEARCH_TIMEOUT", "1")

    return apply


def test_green_exits_0(double, env_for, capsys):
    env_for(double)
    assert watcher_check_main([]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["status"] == "green"
    assert ES_PASSWORD not in out


def test_yellow_exits_1(double, env_for, capsys):
    env_for(double)
    del double.scenario.indices[".triggered_watches"]
    assert watcher_check_main([]) == 1


def test_red_exits_2(double, env_for, capsys):
    env_for(double)
    double.scenario.license_compliant = False
    assert watcher_check_main([]) == 2
    assert json.loads(capsys.readouterr().out)["status"] == "red"


def test_unconfigured_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("ELASTICSEARCH_URL", raising=False)
    assert watcher_check_main([]) == 2
    assert json.loads(capsys.readouterr().out)["status"] == "unknown"


def test_bad_setting_exits_2_with_the_fix(monkeypatch, capsys):
    monkeypatch.setenv("ELASTICSEARCH_TIMEOUT", "soon")
    assert watcher_check_main([]) == 2
    assert "ELASTICSEARCH_TIMEOUT must be a number" in capsys.readouterr().err
