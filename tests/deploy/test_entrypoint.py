"""The container's entrypoint, run here: its rendering, then its supervision."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import crossplane
import pytest
import requests

from tests.conftest import ADMIN_TOKEN, REPO, localstack

TOKEN = "test-lightstep-token-entrypoint"


def _load_entrypoint():
    path = REPO / "deploy" / "docker" / "entrypoint.py"
    spec = importlib.util.spec_from_file_location("entrypoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = _load_entrypoint()


@pytest.fixture
def folder():
    # Not pytest's tmp_path (mode 700): as root, nginx's workers run as nobody
    # and must reach the socket.
    path = Path(tempfile.mkdtemp(prefix="logreg-entrypoint-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=True)


def environment(folder: Path, **extra) -> dict:
    return {
        "PORT": str(localstack.free_port()),
        "PROCESSES": "2",
        "APP_VENV": str(Path(sys.executable).parent.parent),
        "APP_DIR": str(REPO),
        "RUN_DIR": str(folder / "run"),
        "LOG_DIR": str(folder / "log"),
        "NGINX_DIR": str(folder / "nginx"),
        "MODEL_DIR": str(folder / "models"),
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "LIGHTSTEP_ACCESS_TOKEN": TOKEN,
        "TRACING": "off",
        # No module here, whatever the machine has: the module-less rendering.
        "NGINX_OPENTRACING_MODULE": str(folder / "absent.so"),
        "NGINX_OTEL_MODULE": str(folder / "absent.so"),
        **extra,
    }


def nginx_t(config: dict, conf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        entrypoint.nginx_command(config, conf, "-t"), capture_output=True, text=True
    )


@pytest.mark.parametrize("variant", ["opentracing", "otel", "off"])
def test_rendering_without_the_module_passes_nginx_t(folder, variant):
    env = environment(folder, NGINX_TRACING=variant)
    config = entrypoint.settings(env)

    conf = entrypoint.render_all(config, env)
    result = nginx_t(config, conf)

    assert result.returncode == 0, result.stderr
    text = conf.read_text()
    assert "load_module" not in text
    assert "opentracing_load_tracer" not in text
    site = conf.parent / "logreg"
    assert f"listen {env['PORT']};" in (site / "server.conf").read_text()
    assert f"server unix:{folder}/run/uwsgi.sock;" in (site / "server.conf").read_text()
    for name in ("tracing-http.conf", "tracing-location.conf"):
        assert (site / name).read_text().startswith("# nginx tracing: ")


def test_opentracing_variant_loads_module_and_renders_plugin_config(folder):
    module, plugin = folder / "ngx_http_opentracing_module.so", folder / "plugin.so"
    module.touch()
    plugin.touch()
    env = environment(
        folder,
        NGINX_OPENTRACING_MODULE=str(module),
        LIGHTSTEP_TRACER_PLUGIN=str(plugin),
    )

    conf = entrypoint.render_all(entrypoint.settings(env), env)

    lightstep = folder / "nginx" / "lightstep-config.json"
    text = conf.read_text()
    assert f"load_module {module};" in text
    assert f"opentracing_load_tracer {plugin} {lightstep};" in text
    assert stat.S_IMODE(lightstep.stat().st_mode) == 0o640
    assert json.loads(lightstep.read_text()) == {
        "component_name": "nginx",
        "access_token": TOKEN,
        "collector_host": "ingest.lightstep.com",
        "collector_port": 443,
        "collector_plaintext": False,
        "use_single_key_propagation": False,
    }
    location = (conf.parent / "logreg" / "tracing-location.conf").read_text()
    assert "HTTP_OT_TRACER_TRACEID" in location


def test_otel_variant_renders_exporter_with_the_token_privately(folder):
    module = folder / "ngx_otel_module.so"
    module.touch()
    env = environment(folder, NGINX_TRACING="otel", NGINX_OTEL_MODULE=str(module))

    conf = entrypoint.render_all(entrypoint.settings(env), env)

    http = conf.parent / "logreg" / "tracing-http.conf"
    assert f"load_module {module};" in conf.read_text()
    assert stat.S_IMODE(http.stat().st_mode) == 0o640
    parsed = crossplane.parse(str(http), single=True, check_ctx=False)
    [exporter] = [
        d for d in parsed["config"][0]["parsed"] if d["directive"] == "otel_exporter"
    ]
    assert [(d["directive"], d["args"]) for d in exporter["block"][:2]] == [
        ("endpoint", ["https://ingest.lightstep.com:443"]),
        ("header", ["lightstep-access-token", TOKEN]),
    ]


def test_unknown_tracing_variant_is_refused_with_the_choices(folder):
    env = environment(folder, NGINX_TRACING="zipkin")

    with pytest.raises(entrypoint.render.RenderError) as caught:
        entrypoint.render_all(entrypoint.settings(env), env)

    assert str(caught.value) == (
        "NGINX_TRACING must be one of opentracing, otel, off; got 'zipkin'."
    )


def start(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "deploy" / "docker" / "entrypoint.py")],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Its own process group, holding uWSGI and nginx too: a failed test
        # can stop all three at once.
        start_new_session=True,
    )


def kill_all(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_healthy(env: dict, process: subprocess.Popen, timeout: float = 60) -> None:
    url = f"http://127.0.0.1:{env['PORT']}/api/v1/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"no healthy answer on {url} within {timeout}s")


@pytest.mark.e2e
def test_container_stops_when_uwsgi_dies(folder):
    env = environment(folder)
    process = start(env)
    try:
        wait_healthy(env, process)
        master = int((folder / "run" / "uwsgi.pid").read_text())

        os.kill(master, signal.SIGKILL)

        assert process.wait(30) == 1
        assert "uWSGI exited (-9); stopping." in process.stderr.read()
        assert not (folder / "nginx" / "nginx.pid").exists()
    finally:
        kill_all(process)


@pytest.mark.e2e
def test_sigterm_stops_both_and_exits_zero(folder):
    env = environment(folder)
    process = start(env)
    try:
        wait_healthy(env, process)
        master = int((folder / "run" / "uwsgi.pid").read_text())

        process.send_signal(signal.SIGTERM)

        assert process.wait(45) == 0
        assert not Path(f"/proc/{master}").exists()
        assert not (folder / "nginx" / "nginx.pid").exists()
    finally:
        kill_all(process)
