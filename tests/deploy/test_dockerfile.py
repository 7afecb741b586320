"""The Dockerfile, which no machine here can build: lint it, check its inputs."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def copy_sources() -> list[str]:
    """Every source path of a COPY from the build context (not --from=)."""
    sources = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword != "COPY" or "--from=" in rest:
            continue
        words = [word for word in rest.split() if not word.startswith("--")]
        sources += words[:-1]
    return sources


def hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    return str(found) if found.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing_at_any_level():
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_every_copied_path_exists_in_the_checkout():
    sources = copy_sources()

    assert sources == [
        "deploy/docker/SHA256SUMS",
        "requirements.txt",
        "app/",
        "deploy/__init__.py",
        "deploy/render.py",
        "deploy/docker/entrypoint.py",
        "deploy/uwsgi/app.ini",
        "deploy/nginx/",
    ]
    assert [source for source in sources if not (REPO / source).exists()] == []


def test_dockerignore_keeps_every_copied_path_in_the_context():
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    excluded = [
        source
        for source in copy_sources()
        for pattern in patterns
        if fnmatch.fnmatch(source.rstrip("/"), pattern)
    ]
    assert excluded == []
    assert {".git", ".venv", "var", "deploy/uwsgi/app.env"} <= set(patterns)


def test_runtime_runs_unprivileged_with_a_health_check_and_the_entrypoint():
    found = instructions(DOCKERFILE.read_text())
    last_stage = found[max(i for i, (k, _) in enumerate(found) if k == "FROM") :]
    keywords = dict(last_stage)

    assert keywords["USER"] == "10001:10001"
    assert "/api/v1/health" in keywords["HEALTHCHECK"]
    assert keywords["ENTRYPOINT"] == (
        '["tini", "--", "python", "/srv/logreg/deploy/docker/entrypoint.py"]'
    )
    assert keywords["EXPOSE"] == "8080"


def test_tracing_downloads_are_the_pinned_opentracing_15_builds():
    text = DOCKERFILE.read_text()

    assert "ARG NGINX_VERSION=1.22.1" in text
    assert "ARG NGINX_OPENTRACING_VERSION=v0.33.0" in text
    assert "ARG LIGHTSTEP_TRACER_VERSION=v0.13.0" in text
    # The LightStep plugin speaks the OpenTracing 1.5 ABI: never the ot16 build.
    assert "ot16" not in re.sub(r"#.*", "", text)
    assert "sha256sum --strict -c wanted.sha256" in text
