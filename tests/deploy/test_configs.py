"""The deployment files: the uWSGI ini's required options, nginx's server block."""

from __future__ import annotations

import shutil
import stat

import crossplane
import pytest

from tests.conftest import REPO, localstack

UWSGI_INI = REPO / "deploy" / "uwsgi" / "app.ini"
NGINX_DIR = REPO / "deploy" / "nginx"


def ini_options(path):
    """``key = value`` pairs in order; uWSGI ini files repeat keys on purpose."""
    options = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith((";", "#", "[")):
            continue
        key, _, value = line.partition("=")
        options.append((key.strip(), value.strip()))
    return options


def test_uwsgi_ini_has_the_production_options():
    options = dict(ini_options(UWSGI_INI))

    assert options["module"] == "app.wsgi:application"
    assert options["master"] == "true"
    assert options["processes"] == "%(worker_count)"
    assert options["socket"] == "%(run_dir)/uwsgi.sock"
    assert options["chmod-socket"] == "660"
    assert options["chown-socket"] == "%(app_user):%(socket_group)"
    assert options["for-readline"] == "%d/app.env"
    assert options["env"] == "%(_)"
    for flag in ("vacuum", "single-interpreter", "die-on-term", "need-app", "strict"):
        assert options[flag] == "true", flag
    for key in ("reload-mercy", "worker-reload-mercy", "harakiri", "chdir"):
        assert options[key], key
    assert int(options["buffer-size"]) >= 32768
    assert options["logger"].startswith("file:")
    assert options["req-logger"].startswith("file:")
    assert "plugins" not in options  # PyPI's uWSGI has Python built in


def test_example_env_file_holds_only_key_value_lines():
    lines = (REPO / "deploy" / "uwsgi" / "app.env.example").read_text().splitlines()
    assert lines
    for line in lines:
        key, sep, _ = line.partition("=")
        assert sep and key.isupper(), line


def nginx_directives(block, name):
    found = []
    for directive in block:
        if directive["directive"] == name:
            found.append(directive)
        found.extend(nginx_directives(directive.get("block", []), name))
    return found


@pytest.fixture(scope="module")
def server_block():
    # The file is included inside http {}; parsed alone, its context is unknown.
    parsed = crossplane.parse(
        str(NGINX_DIR / "logreg" / "server.conf"), single=True, check_ctx=False
    )
    assert parsed["status"] == "ok", parsed["errors"]
    return parsed["config"][0]["parsed"]


def test_every_api_location_passes_to_the_uwsgi_socket(server_block):
    locations = {
        " ".join(d["args"]): d["block"]
        for d in nginx_directives(server_block, "location")
    }

    for route in ("= /api/v1/train", "= /api/v1/predict", "= /predict", "/api/v1/"):
        block = locations[route]
        assert nginx_directives(block, "uwsgi_pass")[0]["args"] == ["logreg_uwsgi"]
        includes = [d["args"][0] for d in nginx_directives(block, "include")]
        assert "uwsgi_params" in includes
    upstream = nginx_directives(server_block, "upstream")[0]["block"]
    assert upstream[0]["args"] == ["unix:/run/logreg/uwsgi.sock"]


def test_body_limits_fit_batches_and_uploads_and_match_the_app(server_block):
    from app.settings import Settings

    server = next(
        d["block"] for d in nginx_directives(server_block, "server") if "block" in d
    )
    top = {d["directive"]: d["args"] for d in server}
    train = next(
        d["block"]
        for d in nginx_directives(server_block, "location")
        if d["args"] == ["=", "/api/v1/train"]
    )
    train_limit = nginx_directives(train, "client_max_body_size")[0]["args"]

    defaults = Settings()
    assert top["client_max_body_size"] == [f"{defaults.max_predict_bytes // 2**20}m"]
    assert train_limit == [f"{defaults.max_train_bytes // 2**20}m"]
    # Predict-sized bodies stay in memory rather than a temp file.
    assert top["client_body_buffer_size"] == ["16m"]
    assert top["server_tokens"] == ["off"]


def test_local_rendering_passes_nginx_t():
    var = REPO / "var" / "tests" / "render"
    shutil.rmtree(var, ignore_errors=True)
    stack = localstack.Stack(var_dir=var, env={"MAX_PREDICT_BYTES": "12345"})

    stack.prepare()
    output = stack.check_nginx()

    assert "syntax is ok" in output
    conf = var / "nginx" / "conf" / "logreg"
    rendered = (conf / "server.conf").read_text()
    assert f"listen 127.0.0.1:{stack.port};" in rendered
    assert f"server unix:{stack.socket_path};" in rendered
    assert "client_max_body_size 12345;" in rendered
    if not stack.tracing_module:
        assert "not installed" in (conf / "tracing-location.conf").read_text()
        assert "opentracing" not in (var / "nginx" / "conf" / "nginx.conf").read_text()


def test_running_stack_socket_is_not_world_writable(stack_factory):
    stack = stack_factory(processes=2)

    mode = stack.socket_path.stat().st_mode

    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    assert (stack.run_dir / "app.env").stat().st_mode & 0o077 == 0


def test_a_deep_checkout_gets_a_socket_path_that_fits_sun_path():
    deep = REPO / "var" / "tests" / ("d" * 120)
    stack = localstack.Stack(var_dir=deep)
    again = localstack.Stack(var_dir=deep)
    shallow = localstack.Stack(var_dir=REPO / "var" / "tests" / "s")

    assert len(str(deep / "run" / "uwsgi.sock")) > localstack.MAX_SOCKET_PATH
    assert len(str(stack.socket_path).encode()) <= localstack.MAX_SOCKET_PATH
    assert stack.run_dir.name.startswith("logreg-run-")
    assert again.run_dir == stack.run_dir
    assert shallow.run_dir == REPO / "var" / "tests" / "s" / "run"
