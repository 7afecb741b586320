"""Fixtures for the Watcher tests: the double, settings pointing at it, an app."""

from __future__ import annotations

import dataclasses

import pytest

import app.watcher as watcher
from app.settings import Settings
from app.watcher.checks import forget_starting_nodes
from tests.doubles.elasticsearch import ElasticsearchDouble, Scenario

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
ES_PASSWORD = "s3cret-es-password"


@pytest.fixture(autouse=True)
def _fresh_process_state():
    watcher.invalidate_cache()
    forget_starting_nodes()
    yield
    watcher.invalidate_cache()
    forget_starting_nodes()


@pytest.fixture
def double():
    with ElasticsearchDouble(Scenario(basic_auth=("watcher", ES_PASSWORD))) as es:
        yield es


def settings_for(double, **overrides) -> Settings:
    base = Settings(
        admin_token=ADMIN_TOKEN,
        elasticsearch_url=double.url_with_auth()
        if double.scenario.basic_auth
        else double.url,
        elasticsearch_timeout=1.0,
        watcher_cache_seconds=0.0,
        tracing=False,
    )
    return dataclasses.replace(base, **overrides)


def make_app(settings):
    """The real factory once it can build; a minimal app around the blueprint."""
    try:
        from app import create_app

        return create_app(settings)
    except Exception:  # the factory is being written concurrently
        from flask import Flask

        from app.api.watcher import bp
        from app.errors import register_error_handlers

        flask_app = Flask(__name__)
        flask_app.config["SETTINGS"] = settings
        register_error_handlers(flask_app)
        flask_app.register_blueprint(bp)
        return flask_app


@pytest.fixture
def http(double, tmp_path):
    """A test client for an app whose settings point at the double."""
    settings = settings_for(double, model_dir=tmp_path / "models")
    return make_app(settings).test_client()
