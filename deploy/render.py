"""nginx's configuration and the LightStep plugin's JSON, rendered from settings.

Two callers share it: ``deploy/localstack.py`` (``make run`` and the tests, on
loopback) and ``deploy/docker/entrypoint.py`` (the container). Both render the
production server block ``deploy/nginx/logreg/server.conf`` with its listen
address, socket and body limits rewritten, and one of two tracing variants:

- ``opentracing``: the nginx-opentracing module with the LightStep plugin
  (``deploy/nginx/logreg/tracing-*.conf``);
- ``otel``: nginx's own OpenTelemetry module, ``ngx_otel_module``
  (``deploy/nginx/otel/``), which exports OTLP/gRPC and propagates W3C
  ``traceparent``.

A variant whose module is not installed is rendered without its directives:
the include files hold a comment, and no ``load_module`` line is written, so
``nginx -t`` passes on a machine without the module.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from string import Template

DEPLOY = Path(__file__).resolve().parent
SITE = DEPLOY / "nginx" / "logreg"
OTEL_SITE = DEPLOY / "nginx" / "otel"

NGINX_MODULE_DIRS = (
    "/usr/lib/nginx/modules",
    "/usr/share/nginx/modules",
    "/etc/nginx/modules",
)
PLUGIN_DIRS = ("/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu")
TRACING_MODULE = "ngx_http_opentracing_module.so"
LIGHTSTEP_PLUGIN = "liblightstep_tracer_plugin.so"
OTEL_MODULE = "ngx_otel_module.so"
VARIANTS = ("opentracing", "otel", "off")
TRACING_INCLUDES = ("tracing-http.conf", "tracing-location.conf")

# The app settings uWSGI reads from app.env (for-readline), never logged.
APP_VARIABLES = (
    "ADMIN_TOKEN",
    "MODEL_DIR",
    "MAX_PREDICT_BYTES",
    "MAX_TRAIN_BYTES",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "BLAS_THREADS",
    "TRACING",
    "TRACER",
    "LIGHTSTEP_ACCESS_TOKEN",
    "LIGHTSTEP_COLLECTOR_HOST",
    "LIGHTSTEP_COLLECTOR_PORT",
    "LIGHTSTEP_COLLECTOR_ENCRYPTION",
    "LIGHTSTEP_COMPONENT_NAME",
    "LIGHTSTEP_FLUSH_SECONDS",
    "OTLP_ENDPOINT",
    "ELASTICSEARCH_URL",
    "ELASTICSEARCH_API_KEY",
    "ELASTICSEARCH_CA_FILE",
    "ELASTICSEARCH_VERIFY_CERTS",
    "ELASTICSEARCH_TIMEOUT",
    "WATCHER_CACHE_SECONDS",
    "WATCHER_STALE_SECONDS",
)

MIB = 1024 * 1024


class RenderError(RuntimeError):
    """A file could not be rendered; the message says what to fix."""


def _first(names, folders) -> str | None:
    for folder in folders:
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    return None


def find_tracing_module(env=None) -> tuple[str, str] | None:
    """The nginx-opentracing module and LightStep plugin, when both are here."""
    env = os.environ if env is None else env
    module = env.get("NGINX_OPENTRACING_MODULE") or _first(
        [TRACING_MODULE], NGINX_MODULE_DIRS
    )
    plugin = env.get("LIGHTSTEP_TRACER_PLUGIN") or _first(
        [LIGHTSTEP_PLUGIN], PLUGIN_DIRS
    )
    if module and plugin and os.path.exists(module) and os.path.exists(plugin):
        return module, plugin
    return None


def find_otel_module(env=None) -> str | None:
    """nginx's OpenTelemetry module (Debian/nginx.org: nginx-module-otel)."""
    env = os.environ if env is None else env
    module = env.get("NGINX_OTEL_MODULE") or _first([OTEL_MODULE], NGINX_MODULE_DIRS)
    return module if module and os.path.exists(module) else None


def replace_line(text: str, pattern: str, replacement: str) -> str:
    updated, count = re.subn(pattern, replacement, text)
    if count != 1:
        raise RenderError(f"server.conf should hold one line matching {pattern!r}.")
    return updated


def server_conf(
    *, listen: str, socket: str, predict_limit: int, train_limit: int
) -> str:
    """The production server block, for this address, socket and body limits."""
    text = (SITE / "server.conf").read_text()
    text = replace_line(text, r"listen \S+;", f"listen {listen};")
    text = replace_line(text, r"server unix:\S+;", f"server unix:{socket};")
    text = replace_line(
        text, r"client_max_body_size 64m;", f"client_max_body_size {predict_limit};"
    )
    return replace_line(
        text, r"client_max_body_size 1024m;", f"client_max_body_size {train_limit};"
    )


def body_limits(env) -> tuple[int, int]:
    """nginx's limits agree with the app's MAX_PREDICT_BYTES / MAX_TRAIN_BYTES."""
    try:
        return (
            int(env.get("MAX_PREDICT_BYTES") or 64 * MIB),
            int(env.get("MAX_TRAIN_BYTES") or 1024 * MIB),
        )
    except ValueError:
        raise RenderError(
            "MAX_PREDICT_BYTES and MAX_TRAIN_BYTES must be integers (bytes)."
        ) from None


def lightstep_config(env, component: str = "nginx") -> str:
    """The LightStep plugin's JSON config, from the same variables as the app."""
    template = (SITE / "lightstep-config.json.template").read_text()
    encryption = env.get("LIGHTSTEP_COLLECTOR_ENCRYPTION") or "tls"
    return Template(template).substitute(
        LIGHTSTEP_ACCESS_TOKEN=_json_text(env.get("LIGHTSTEP_ACCESS_TOKEN", "")),
        LIGHTSTEP_NGINX_COMPONENT_NAME=_json_text(component),
        LIGHTSTEP_COLLECTOR_HOST=_json_text(
            env.get("LIGHTSTEP_COLLECTOR_HOST") or "ingest.lightstep.com"
        ),
        LIGHTSTEP_COLLECTOR_PORT=str(int(env.get("LIGHTSTEP_COLLECTOR_PORT") or 443)),
        LIGHTSTEP_COLLECTOR_PLAINTEXT="true" if encryption == "none" else "false",
    )


def _json_text(value: str) -> str:
    # The template quotes the value; a quote or backslash in it must not end it.
    if any(character in value for character in '"\\\n'):
        raise RenderError("LightStep settings must not hold quotes or backslashes.")
    return value


def otel_http_conf(env, component: str = "nginx") -> str:
    """The otel variant's http-level directives, with the exporter's token."""
    template = (OTEL_SITE / "tracing-http.conf.template").read_text()
    token = env.get("LIGHTSTEP_ACCESS_TOKEN", "")
    if not re.fullmatch(r"[A-Za-z0-9+/=_.-]*", token):
        raise RenderError("LIGHTSTEP_ACCESS_TOKEN holds characters nginx cannot quote.")
    return _fill(
        template,
        OTEL_EXPORTER_ENDPOINT=env.get("NGINX_OTLP_ENDPOINT")
        or "https://ingest.lightstep.com:443",
        LIGHTSTEP_ACCESS_TOKEN=token,
        OTEL_SERVICE_NAME=component,
    )


class _Placeholders(Template):
    """Only ``${UPPER_CASE}`` is a placeholder: nginx's own ``$uri`` stays."""

    flags = 0
    idpattern = r"(?!)"
    braceidpattern = r"[A-Z][A-Z0-9_]*"


def _fill(template: str, **values) -> str:
    text = _Placeholders(template).safe_substitute(values)
    left = re.findall(r"\$\{[A-Z][A-Z0-9_]*\}", text)
    if left:
        raise RenderError(f"no value for {', '.join(left)} in a template.")
    return text


def tracing_includes(variant: str, available: bool, env) -> dict[str, str]:
    """The two include files server.conf and the main file expect, by name."""
    if variant not in VARIANTS:
        raise RenderError(
            f"NGINX_TRACING must be one of {', '.join(VARIANTS)}; got {variant!r}."
        )
    if variant == "off" or not available:
        why = "off" if variant == "off" else f"the {variant} module is not installed"
        note = f"# nginx tracing: {why}; tracing directives left out.\n"
        return {name: note for name in TRACING_INCLUDES}
    if variant == "opentracing":
        return {name: (SITE / name).read_text() for name in TRACING_INCLUDES}
    return {
        "tracing-http.conf": otel_http_conf(env),
        "tracing-location.conf": (OTEL_SITE / "tracing-location.conf").read_text(),
    }


def main_conf(
    *,
    header: str,
    var: Path,
    pid: Path,
    access_log: str,
    error_log: str,
    user_line: str = "",
    module_line: str = "",
    tracer_line: str = "",
    worker_processes: str = "2",
) -> str:
    return MAIN_TEMPLATE.format(
        header=header,
        user_line=user_line,
        worker_processes=worker_processes,
        pid=pid,
        module_line=module_line,
        tracer_line=tracer_line,
        var=var,
        access_log=access_log,
        error_log=error_log,
    )


def write_private(path: Path, text: str, mode: int = 0o640) -> None:
    """Write a file that holds a secret, never readable by others."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def write_app_env(path: Path, values: dict) -> None:
    lines = []
    for name, value in values.items():
        if "\n" in value:
            raise RenderError(f"{name} must not contain a newline.")
        lines.append(f"{name}={value}\n")
    write_private(path, "".join(lines), 0o600)


MAIN_TEMPLATE = """\
{header}
{user_line}
worker_processes {worker_processes};
pid {pid};
{module_line}

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    error_log {error_log};
    client_body_temp_path {var}/tmp/body;
    uwsgi_temp_path {var}/tmp/uwsgi;
    proxy_temp_path {var}/tmp/proxy;
    fastcgi_temp_path {var}/tmp/fastcgi;
    scgi_temp_path {var}/tmp/scgi;

    {tracer_line}
    include logreg/tracing-http.conf;
    include logreg/server.conf;
    # After the include, which defines the logreg_json format.
    access_log {access_log} logreg_json;
}}
"""


def main(argv=None) -> int:
    """``render.py lightstep-config PATH`` or ``render.py otel-http-conf PATH``.

    For a classic server: systemd renders nginx's secret-holding files from
    /etc/logreg/app.env before nginx starts (deploy/systemd/).
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    renderers = {"lightstep-config": lightstep_config, "otel-http-conf": otel_http_conf}
    if len(args) != 2 or args[0] not in renderers:
        print(f"usage: render.py {{{','.join(renderers)}}} PATH", file=sys.stderr)
        return 2
    try:
        write_private(Path(args[1]), renderers[args[0]](os.environ))
    except RenderError as error:
        print(f"render.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
