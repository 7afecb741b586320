"""The container's entrypoint: render the configuration, run uWSGI and nginx.

1. Render from the environment (deploy/render.py): uWSGI's ini and app.env,
   nginx's main file and server block for ``PORT``, the tracing variant named
   by ``NGINX_TRACING`` (``opentracing``, ``otel`` or ``off``; a variant whose
   module is absent is left out), and the LightStep plugin's JSON (mode 640).
2. Publish the embedded default model when ``MODEL_DIR`` holds none.
3. Start uWSGI, wait for its socket, start nginx in the foreground.
4. Stay until one of them exits, then stop the other and exit with a failing
   status, so the container stops (and its restart policy takes over).
   SIGTERM or SIGINT stops both: nginx finishes its requests (SIGQUIT), uWSGI
   shuts down its workers (SIGTERM with die-on-term), exit status 0.

Every path is an environment variable with the image's default, so the tests
run the same file on loopback as an unprivileged user.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent


# Run as a script: the checkout (the image's /srv/logreg) must be importable.
sys.path.insert(0, str(DEPLOY.parent))

from deploy import render  # noqa: E402

DEFAULTS = {
    "PORT": "8080",
    "PROCESSES": "4",
    "NGINX_TRACING": "opentracing",
    "APP_DIR": str(DEPLOY.parent),
    "APP_VENV": "/opt/venv",
    "RUN_DIR": "/run/logreg",
    "LOG_DIR": "/var/log/logreg",
    "NGINX_DIR": "/run/logreg/nginx",
    "MODEL_DIR": "/var/lib/logreg/models",
    "DEFAULT_MODEL": "on",
    "NGINX": "/usr/sbin/nginx",
    "NGINX_UWSGI_PARAMS": "/etc/nginx/uwsgi_params",
    # Only when started as root (the image runs as an unprivileged user):
    # nginx's workers then drop to this user and group.
    "NGINX_USER": "nobody",
    "NGINX_GROUP": "nogroup",
}
STOP_TIMEOUT_SECONDS = 30.0
START_TIMEOUT_SECONDS = 60.0


class EntrypointError(RuntimeError):
    """The container cannot start; the message says what to fix."""


def settings(environ=None) -> dict:
    environ = os.environ if environ is None else environ
    values = dict(DEFAULTS)
    values.update({name: environ[name] for name in DEFAULTS if environ.get(name)})
    return values


def render_all(config: dict, environ=None) -> Path:
    """Write every file uWSGI and nginx read; the nginx main file's path."""
    environ = os.environ if environ is None else environ
    run_dir = Path(config["RUN_DIR"])
    nginx_dir = Path(config["NGINX_DIR"])
    conf_dir = nginx_dir / "conf"
    for folder in (run_dir, Path(config["LOG_DIR"]), Path(config["MODEL_DIR"])):
        folder.mkdir(parents=True, exist_ok=True)
    (conf_dir / "logreg").mkdir(parents=True, exist_ok=True)
    for name in ("body", "uwsgi", "proxy", "fastcgi", "scgi"):
        (nginx_dir / "tmp" / name).mkdir(parents=True, exist_ok=True)

    shutil.copy(DEPLOY / "uwsgi" / "app.ini", run_dir / "uwsgi.ini")
    app_env = {name: environ[name] for name in render.APP_VARIABLES if name in environ}
    app_env["MODEL_DIR"] = config["MODEL_DIR"]
    render.write_app_env(run_dir / "app.env", app_env)

    params = Path(config["NGINX_UWSGI_PARAMS"])
    if not params.exists():
        raise EntrypointError(f"{params} is missing: the image needs nginx's files.")
    shutil.copy(params, conf_dir / "uwsgi_params")

    predict_limit, train_limit = render.body_limits(environ)
    (conf_dir / "logreg" / "server.conf").write_text(
        render.server_conf(
            listen=config["PORT"],
            socket=str(run_dir / "uwsgi.sock"),
            predict_limit=predict_limit,
            train_limit=train_limit,
        )
    )

    variant = config["NGINX_TRACING"]
    module_line = tracer_line = ""
    available = False
    if variant == "opentracing":
        found = render.find_tracing_module(environ)
        if found:
            available = True
            module, plugin = found
            lightstep = nginx_dir / "lightstep-config.json"
            render.write_private(lightstep, render.lightstep_config(environ))
            module_line = f"load_module {module};"
            tracer_line = f"opentracing_load_tracer {plugin} {lightstep};"
    elif variant == "otel":
        module = render.find_otel_module(environ)
        if module:
            available = True
            module_line = f"load_module {module};"
    for name, text in render.tracing_includes(variant, available, environ).items():
        # The otel variant's http file holds the access token.
        render.write_private(conf_dir / "logreg" / name, text)

    conf = conf_dir / "nginx.conf"
    conf.write_text(
        render.main_conf(
            header="# Rendered by deploy/docker/entrypoint.py at container start.",
            var=nginx_dir,
            pid=nginx_dir / "nginx.pid",
            access_log="/dev/stdout",
            error_log="stderr",
            user_line=_nginx_user_line(config),
            module_line=module_line,
            tracer_line=tracer_line,
            worker_processes="auto",
        )
    )
    return conf


def _nginx_user_line(config: dict) -> str:
    if os.getuid() != 0:
        return ""
    return f"user {config['NGINX_USER']} {config['NGINX_GROUP']};"


def nginx_command(config: dict, conf: Path, *extra) -> list[str]:
    return [
        config["NGINX"],
        "-p",
        config["NGINX_DIR"],
        "-c",
        str(conf),
        "-e",
        "stderr",
        *extra,
    ]


def uwsgi_env(config: dict, environ=None) -> dict:
    environ = os.environ if environ is None else environ
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    env = dict(environ)
    env.update(
        APP_DIR=config["APP_DIR"],
        APP_VENV=config["APP_VENV"],
        RUN_DIR=config["RUN_DIR"],
        LOG_DIR=config["LOG_DIR"],
        PROCESSES=config["PROCESSES"],
        APP_USER=user,
        APP_GROUP=group,
        # Unprivileged, nginx runs as this same user; as root, its workers
        # drop to NGINX_USER and reach the socket through its group.
        SOCKET_GROUP=config["NGINX_GROUP"] if os.getuid() == 0 else group,
    )
    return env


def _wait(condition, processes, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for name, process in processes:
            if process.poll() is not None:
                raise EntrypointError(
                    f"{name} exited ({process.returncode}) while waiting for {what}."
                )
        if condition():
            return
        time.sleep(0.05)
    raise EntrypointError(f"timed out waiting for {what}.")


def _stop(processes) -> None:
    for process, stop_signal in processes:
        if process.poll() is None:
            process.send_signal(stop_signal)
    for process, _ in processes:
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    config = settings()
    python = str(Path(config["APP_VENV"]) / "bin" / "python")
    try:
        conf = render_all(config)
        subprocess.run(nginx_command(config, conf, "-t", "-q"), check=True)
        if config["DEFAULT_MODEL"].strip().lower() in ("on", "true", "yes", "1"):
            subprocess.run(
                [python, "-m", "app", "default-model"],
                cwd=config["APP_DIR"],
                env=dict(os.environ, MODEL_DIR=config["MODEL_DIR"]),
                check=True,
            )
    except (render.RenderError, EntrypointError) as error:
        print(f"entrypoint: {error}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as error:
        print(f"entrypoint: {error}", file=sys.stderr)
        return 2

    stopping = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.append(signum))

    socket_path = Path(config["RUN_DIR"]) / "uwsgi.sock"
    socket_path.unlink(missing_ok=True)
    uwsgi = subprocess.Popen(
        [
            str(Path(config["APP_VENV"]) / "bin" / "uwsgi"),
            "--ini",
            str(Path(config["RUN_DIR"]) / "uwsgi.ini"),
        ],
        env=uwsgi_env(config),
        cwd=config["APP_DIR"],
        stdin=subprocess.DEVNULL,
    )
    running = [("uWSGI", uwsgi)]
    nginx = None
    try:
        _wait(socket_path.exists, running, "uWSGI's socket")
        nginx = subprocess.Popen(
            nginx_command(config, conf, "-g", "daemon off;"), stdin=subprocess.DEVNULL
        )
        running.append(("nginx", nginx))
    except EntrypointError as error:
        print(f"entrypoint: {error}", file=sys.stderr)
        _stop([(uwsgi, signal.SIGTERM)])
        return 1

    status = 0
    while not stopping:
        exited = [(name, p) for name, p in running if p.poll() is not None]
        if exited:
            name, process = exited[0]
            print(
                f"entrypoint: {name} exited ({process.returncode}); stopping.",
                file=sys.stderr,
            )
            status = 1
            break
        time.sleep(0.2)

    _stop([(nginx, signal.SIGQUIT), (uwsgi, signal.SIGTERM)])
    return status


if __name__ == "__main__":
    sys.exit(main())
