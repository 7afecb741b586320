"""nginx's side of tracing: the production config and what `make run` renders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from string import Template

import crossplane
import pytest

REPO = Path(__file__).resolve().parents[2]
NGINX = REPO / "deploy" / "nginx"
PROPAGATION = {
    "HTTP_OT_TRACER_TRACEID": "$opentracing_context_ot_tracer_traceid",
    "HTTP_OT_TRACER_SPANID": "$opentracing_context_ot_tracer_spanid",
    "HTTP_OT_TRACER_SAMPLED": "$opentracing_context_ot_tracer_sampled",
}


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """The production config parsed with its includes, as /etc/nginx holds it."""
    etc = tmp_path_factory.mktemp("etc-nginx")
    shutil.copytree(NGINX, etc, dirs_exist_ok=True)
    for name in ("mime.types", "uwsgi_params"):
        shutil.copy(Path("/etc/nginx") / name, etc / name)
    parsed = crossplane.parse(str(etc / "nginx.conf"), combine=True)
    assert parsed["errors"] == []
    return parsed["config"][0]["parsed"]


def directives(block, name):
    return [entry for entry in block if entry["directive"] == name]


def only(block, name):
    [entry] = directives(block, name)
    return entry


def test_production_config_loads_the_module_and_the_lightstep_tracer(production):
    assert only(production, "load_module")["args"] == [
        "modules/ngx_http_opentracing_module.so"
    ]
    http = only(production, "http")["block"]
    assert only(http, "opentracing_load_tracer")["args"] == [
        "/usr/local/lib/liblightstep_tracer_plugin.so",
        "/etc/nginx/lightstep-config.json",
    ]
    assert only(http, "opentracing")["args"] == ["on"]
    assert only(http, "opentracing_trace_locations")["args"] == ["off"]


def test_every_uwsgi_location_names_its_span_and_passes_the_context(production):
    http = only(production, "http")["block"]
    server = only(http, "server")["block"]
    # /metrics is scraped every few seconds: it makes no nginx span on purpose.
    uwsgi_locations = [
        location
        for location in directives(server, "location")
        if directives(location["block"], "uwsgi_pass")
        and location["args"] != ["=", "/metrics"]
    ]

    assert len(uwsgi_locations) == 4
    for location in uwsgi_locations:
        block = location["block"]
        assert only(block, "opentracing_operation_name")["args"] == [
            "$request_method $logreg_operation"
        ]
        tags = {
            entry["args"][0]: entry["args"][1]
            for entry in directives(block, "opentracing_tag")
        }
        assert tags == {
            "logreg.route": "$logreg_route",
            "http.request_id": "$logreg_request_id",
        }
        params = {
            entry["args"][0]: entry["args"][1:]
            for entry in directives(block, "uwsgi_param")
            if entry["args"][0].startswith("HTTP_OT_")
        }
        assert params == {
            name: [variable, "if_not_empty"] for name, variable in PROPAGATION.items()
        }


def test_span_names_follow_the_app_routes(production, tmp_path):
    http = only(production, "http")["block"]
    [operation_map] = [
        entry
        for entry in directives(http, "map")
        if entry["args"][1] == "$logreg_operation"
    ]
    names = {entry["directive"]: entry["args"][0] for entry in operation_map["block"]}

    assert names["default"] == "(unmatched)"
    assert names["~^/api/v1/train/[^/]+$"] == "/api/v1/train/<job_id>"
    assert names["/api/v1/predict"] == "/api/v1/predict"


def test_tracing_includes_pass_nginx_t_without_the_module_directives(tmp_path):
    # nginx here has no opentracing module: check the rest of the syntax (the
    # map, the uwsgi_param lines) by leaving out what only the module knows.
    def plain(name):
        text = (NGINX / "logreg" / name).read_text()
        text = re.sub(r"^\s*opentracing\w*\s[^;]*;", "", text, flags=re.MULTILINE)
        return text.replace("$opentracing_context_", "$http_")

    (tmp_path / "tracing-http.conf").write_text(plain("tracing-http.conf"))
    (tmp_path / "tracing-location.conf").write_text(plain("tracing-location.conf"))
    (tmp_path / "nginx.conf").write_text(
        "pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n"
        "    include tracing-http.conf;\n"
        "    server {\n        listen 127.0.0.1:9;\n"
        "        location / {\n            set $logreg_route api;\n"
        "            include tracing-location.conf;\n"
        "            uwsgi_pass unix:/nonexistent.sock;\n        }\n    }\n}\n"
    )

    result = subprocess.run(
        [
            "/usr/sbin/nginx",
            "-t",
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
        ],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr


def test_lightstep_config_renders_to_the_json_the_plugin_reads():
    template = (NGINX / "logreg" / "lightstep-config.json.template").read_text()

    rendered = Template(template).substitute(
        LIGHTSTEP_ACCESS_TOKEN="tok",
        LIGHTSTEP_NGINX_COMPONENT_NAME="nginx",
        LIGHTSTEP_COLLECTOR_HOST="127.0.0.1",
        LIGHTSTEP_COLLECTOR_PORT="8360",
        LIGHTSTEP_COLLECTOR_PLAINTEXT="true",
    )

    assert json.loads(rendered) == {
        "component_name": "nginx",
        "access_token": "tok",
        "collector_host": "127.0.0.1",
        "collector_port": 8360,
        "collector_plaintext": True,
        "use_single_key_propagation": False,
    }


def test_local_stack_leaves_tracing_out_without_the_module_and_passes_nginx_t():
    from deploy.localstack import Stack

    # Under the checkout, like the stack fixture: nginx's workers must reach it.
    folder = REPO / "var" / "tests" / "tracing-local-nginx"
    shutil.rmtree(folder, ignore_errors=True)
    stack = Stack(var_dir=folder, env={"ADMIN_TOKEN": "x"})
    if stack.tracing_module:
        pytest.skip("the nginx-opentracing module is installed here")

    stack.prepare()

    site = stack.nginx_dir / "conf" / "logreg"
    for name in ("tracing-http.conf", "tracing-location.conf"):
        assert (site / name).read_text() == (
            "# nginx tracing: the opentracing module is not installed; "
            "tracing directives left out.\n"
        )
    assert "syntax is ok" in stack.check_nginx()
