"""Fixtures shared by every test: settings, an app, the cat data, a real stack."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.settings import Settings
from deploy import localstack

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "catvnoncat"
ADMIN_TOKEN = "test-admin-token-5f0c2a9d"


def pytest_collection_finish(session):
    # An empty run must fail loudly, never pass as "nothing to do".
    if not session.items and not session.config.option.collectonly:
        raise pytest.UsageError("no tests were collected")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        model_dir=tmp_path / "models", admin_token=ADMIN_TOKEN, tracing=False
    )


@pytest.fixture
def make_app():
    from app import create_app

    def build(settings, **overrides):
        return create_app(dataclasses.replace(settings, **overrides))

    return build


@pytest.fixture
def app(settings, make_app):
    return make_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="session")
def cat_data():
    """The shared cat / non-cat photos: images (209, 64, 64, 3) uint8, labels."""
    path = SHARED_DATA / "train.npz"
    if not path.exists():
        pytest.fail(f"the shared data set is missing: {path}")
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


@pytest.fixture(scope="session")
def cat_npz_bytes(cat_data) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **cat_data)
    return buffer.getvalue()


@pytest.fixture
def stack_factory(request):
    """Start real uWSGI workers behind real nginx on 127.0.0.1; stop at teardown.

    The stack's files live under the checkout's ``var/tests/`` rather than
    pytest's private temp folder, because nginx's workers (www-data, when the
    tests run as root) must be able to reach the socket.
    """
    Stack = localstack.Stack

    started = []
    base = REPO / "var" / "tests"

    def start(env=None, processes=2, name=None):
        folder = base / (name or request.node.name)[:60]
        shutil.rmtree(folder, ignore_errors=True)
        env = dict(env or {})
        env.setdefault("ADMIN_TOKEN", ADMIN_TOKEN)
        env.setdefault("TRACING", "off")
        stack = Stack(var_dir=folder, processes=processes, env=env)
        started.append(stack)
        return stack.start()

    yield start

    for stack in started:
        stack.stop()
