"""Run the production stack on one machine: uWSGI workers behind nginx.

``make run`` calls :func:`main`; the end-to-end tests import :class:`Stack`.
Both use the production files: ``deploy/uwsgi/app.ini`` (copied beside a
generated ``app.env``, which uWSGI reads with ``for-readline``) and
``deploy/nginx/logreg/server.conf`` (with its listen address, socket path and
body limits rewritten). Everything written goes under one folder, ``var/`` by
default: sockets and pids in ``run/``, logs in ``log/``, models in ``models/``,
nginx's files in ``nginx/``.
"""

from __future__ import annotations

import argparse
import grp
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"

if __package__ in (None, ""):
    # Run as a script (python deploy/localstack.py): Python put deploy/ first
    # on the path; the checkout must be there instead (see deploy/__init__.py).
    sys.path[0] = str(REPO)

from deploy import render  # noqa: E402

TRACING_MODULE = render.TRACING_MODULE
LIGHTSTEP_PLUGIN = render.LIGHTSTEP_PLUGIN
# The app settings written to app.env for uWSGI's for-readline.
APP_VARIABLES = render.APP_VARIABLES

MIB = 1024 * 1024
# sun_path holds 108 bytes with its terminating NUL; keep a margin.
MAX_SOCKET_PATH = 100


class StackError(RuntimeError):
    """The stack could not be started; the message says what to fix."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise StackError(
        "nginx is not installed: `apt-get install nginx` (make run does this as root)."
    )


def find_tracing_module() -> tuple[str, str] | None:
    """The nginx-opentracing module and LightStep plugin, when both are here."""
    return render.find_tracing_module()


class Stack:
    """uWSGI (master + ``processes`` workers) and nginx on 127.0.0.1:``port``."""

    def __init__(
        self,
        var_dir=None,
        port: int = 0,
        processes: int = 2,
        env: dict | None = None,
        python: str = sys.executable,
        quiet: bool = True,
        user: str | None = None,
    ):
        self.var = Path(var_dir or REPO / "var").resolve()
        self.port = port or free_port()
        self.processes = processes
        self.python = python
        self.quiet = quiet
        self.extra_env = dict(env or {})
        # Started as root, uWSGI drops to this user (default: whoever starts it).
        self.user = user

        self.run_dir = Path(self.extra_env.pop("RUN_DIR", None) or self.var / "run")
        if len(str(self.run_dir / "uwsgi.sock").encode()) > MAX_SOCKET_PATH:
            # A unix socket's path must fit in 108 bytes (sun_path); a deep
            # checkout gets its run folder under the temp folder instead, named
            # after the var folder so that the same checkout finds it again.
            digest = hashlib.sha256(str(self.var).encode()).hexdigest()[:12]
            self.run_dir = Path(tempfile.gettempdir()) / f"logreg-run-{digest}"
        self.log_dir = self.var / "log"
        self.nginx_dir = self.var / "nginx"
        self.model_dir = Path(
            self.extra_env.get("MODEL_DIR")
            or os.environ.get("MODEL_DIR")
            or self.var / "models"
        ).resolve()
        self.socket_path = self.run_dir / "uwsgi.sock"
        self.pidfile = self.run_dir / "uwsgi.pid"

        token = self.extra_env.get("ADMIN_TOKEN", os.environ.get("ADMIN_TOKEN"))
        self.admin_token = token if token is not None else secrets.token_urlsafe(24)
        self.tracing_module = find_tracing_module()
        self.uwsgi: subprocess.Popen | None = None
        self.nginx: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def uwsgi_pid(self) -> int:
        return int(self.pidfile.read_text().strip())

    def app_env(self) -> dict:
        values = {
            name: os.environ[name] for name in APP_VARIABLES if name in os.environ
        }
        values.update(self.extra_env)
        values["ADMIN_TOKEN"] = self.admin_token
        values["MODEL_DIR"] = str(self.model_dir)
        return values

    def _owner(self):
        """Who uWSGI runs as, and the group nginx's workers connect with."""
        if self.user:
            account = pwd.getpwnam(self.user)
            user, group = account.pw_name, grp.getgrgid(account.pw_gid).gr_name
        else:
            user = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
        nginx_group = "www-data" if os.getuid() == 0 else group
        return user, group, nginx_group

    # -- preparing files -------------------------------------------------

    def prepare(self) -> None:
        for folder in (self.run_dir, self.log_dir, self.nginx_dir, self.model_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # nginx's workers need to reach the socket, nothing more.
        os.chmod(self.run_dir, 0o755)
        if os.getuid() == 0:
            self._check_nginx_can_reach(self.run_dir)

        shutil.copy(DEPLOY / "uwsgi" / "app.ini", self.run_dir / "uwsgi.ini")
        render.write_app_env(self.run_dir / "app.env", self.app_env())

        self._render_nginx()
        if self.user:
            self._hand_over(self.user)

    def _hand_over(self, user: str) -> None:
        """Give the dropped-to user the folders it writes: run, log, models."""
        account = pwd.getpwnam(user)
        for folder in (self.run_dir, self.log_dir, self.model_dir):
            for path in [folder, *folder.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)

    def _check_nginx_can_reach(self, folder: Path) -> None:
        """As root, nginx's workers run as www-data: they must reach the socket."""
        for parent in [folder, *folder.parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise StackError(
                    f"nginx's workers (www-data) cannot reach {folder}: {parent} is "
                    "not searchable by others. Run from a checkout under a path with "
                    "`chmod o+x` on every folder, or set RUN_DIR to such a folder."
                )

    def _render_nginx(self) -> None:
        conf_dir = self.nginx_dir / "conf"
        site_dir = conf_dir / "logreg"
        site_dir.mkdir(parents=True, exist_ok=True)
        for folder in ("tmp/body", "tmp/uwsgi", "tmp/proxy", "tmp/fastcgi", "tmp/scgi"):
            (self.nginx_dir / folder).mkdir(parents=True, exist_ok=True)

        params = Path("/etc/nginx/uwsgi_params")
        if not params.exists():
            raise StackError("/etc/nginx/uwsgi_params is missing: reinstall nginx.")
        shutil.copy(params, conf_dir / "uwsgi_params")

        predict_limit, train_limit = render.body_limits(self.app_env())
        server = render.server_conf(
            listen=f"127.0.0.1:{self.port}",
            socket=str(self.socket_path),
            predict_limit=predict_limit,
            train_limit=train_limit,
        )
        (site_dir / "server.conf").write_text(server)

        includes = render.tracing_includes(
            "opentracing", self.tracing_module is not None, self.app_env()
        )
        for name, text in includes.items():
            (site_dir / name).write_text(text)

        user_line = "user www-data;" if os.getuid() == 0 else ""
        module_line = tracer_line = ""
        if self.tracing_module:
            module, plugin = self.tracing_module
            module_line = f"load_module {module};"
            config = self.nginx_dir / "lightstep-config.json"
            tracer_line = f"opentracing_load_tracer {plugin} {config};"
            self._render_lightstep_config()

        (conf_dir / "nginx.conf").write_text(
            render.main_conf(
                header=(
                    "# Rendered by deploy/localstack.py for `make run` and the tests;"
                    "\n# the server block is deploy/nginx/logreg/server.conf."
                ),
                var=self.nginx_dir,
                pid=self.nginx_dir / "nginx.pid",
                access_log=f"{self.log_dir}/nginx-access.log",
                error_log=f"{self.log_dir}/nginx-error.log",
                user_line=user_line,
                module_line=module_line,
                tracer_line=tracer_line,
            )
        )

    def _render_lightstep_config(self) -> None:
        render.write_private(
            self.nginx_dir / "lightstep-config.json",
            render.lightstep_config(self.app_env()),
        )

    # -- running ---------------------------------------------------------

    def nginx_command(self, *extra) -> list[str]:
        conf = self.nginx_dir / "conf" / "nginx.conf"
        return [
            find_nginx(),
            "-p",
            str(self.nginx_dir),
            "-c",
            str(conf),
            "-e",
            str(self.log_dir / "nginx-error.log"),
            *extra,
        ]

    def check_nginx(self) -> str:
        """``nginx -t`` on the rendered configuration; its output on success."""
        result = subprocess.run(
            self.nginx_command("-t"), capture_output=True, text=True
        )
        if result.returncode:
            raise StackError(f"nginx -t failed:\n{result.stderr}")
        return result.stderr

    def uwsgi_env(self) -> dict:
        user, group, nginx_group = self._owner()
        env = dict(os.environ)
        env.update(
            APP_DIR=str(REPO),
            APP_VENV=str(Path(os.path.abspath(self.python)).parent.parent),
            RUN_DIR=str(self.run_dir),
            LOG_DIR=str(self.log_dir),
            PROCESSES=str(self.processes),
            APP_USER=user,
            APP_GROUP=group,
            SOCKET_GROUP=nginx_group,
        )
        # The app reads its settings from app.env, like in production.
        for name in APP_VARIABLES:
            env.pop(name, None)
        return env

    def _check_not_running(self) -> None:
        """Refuse to start over a live instance's socket, pid file or port."""
        try:
            pid = int(self.pidfile.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            pid, command = None, b""
        # Its command line names this run folder's ini: not a reused pid.
        if pid is not None and str(self.run_dir / "uwsgi.ini").encode() in command:
            raise StackError(
                f"another instance is running from {self.var} (uWSGI pid {pid}); "
                "stop it first, or give this one its own VAR_DIR."
            )
        with socket.socket() as probe:
            # As nginx binds: connections of a stopped instance lingering in
            # TIME_WAIT do not block the port, a listening socket does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                raise StackError(
                    f"127.0.0.1:{self.port} is already in use; set PORT to a free port."
                ) from None

    def start(self, timeout: float = 60.0) -> Stack:
        self._check_not_running()
        self.prepare()
        self.check_nginx()
        uwsgi = str(Path(self.python).parent / "uwsgi")
        if not os.access(uwsgi, os.X_OK):
            raise StackError(f"{uwsgi} is missing: `pip install -r requirements.txt`.")

        self.socket_path.unlink(missing_ok=True)
        self.uwsgi = subprocess.Popen(
            [uwsgi, "--ini", str(self.run_dir / "uwsgi.ini")],
            env=self.uwsgi_env(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait(lambda: self.socket_path.exists(), timeout, "uWSGI's socket")

        self.nginx = subprocess.Popen(
            self.nginx_command("-g", "daemon off;"),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._wait(self._every_worker_answers, timeout, "every worker to answer")
        return self

    def _health(self) -> str | None:
        """The ``X-Served-By`` worker id of a 200 health answer, else None."""
        try:
            with urllib.request.urlopen(
                self.url + "/api/v1/health", timeout=2
            ) as reply:
                return reply.headers.get("X-Served-By") if reply.status == 200 else None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def _every_worker_answers(self) -> bool:
        """One round of concurrent health checks reached every worker.

        A worker exists (it has a pid) before it can serve: it first runs the
        app's post-fork hooks. Only an answer shows that it is ready; the
        requests are concurrent so that the kernel hands them to more than the
        one idle worker.
        """
        with ThreadPoolExecutor(max_workers=2 * self.processes) as pool:
            answered = set(
                pool.map(lambda _: self._health(), range(2 * self.processes))
            )
        wanted = {str(worker) for worker in range(1, self.processes + 1)}
        return wanted <= answered

    def _wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in (("uWSGI", self.uwsgi), ("nginx", self.nginx)):
                if process is not None and process.poll() is not None:
                    raise StackError(
                        f"{name} exited with status {process.returncode} while waiting "
                        f"for {what}; see {self.log_dir}.{self._log_tail(name)}"
                    )
            if condition():
                return
            time.sleep(0.05)
        raise StackError(
            f"timed out after {timeout:.0f}s waiting for {what}; see {self.log_dir}."
        )

    def _log_tail(self, name: str, lines: int = 12) -> str:
        log = self.log_dir / ("uwsgi.log" if name == "uWSGI" else "nginx-error.log")
        try:
            tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return f" Last lines of {log.name}:\n  " + "\n  ".join(tail)

    def worker_pids(self) -> list[int]:
        """The uWSGI workers: the master's children that are uWSGI processes."""
        # The master keeps its pid through a reload (it re-executes itself),
        # while its pidfile is briefly rewritten; the started process is it.
        master = self.uwsgi.pid if self.uwsgi is not None else self.uwsgi_pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        pids = []
        for pid in map(int, children):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if command.endswith(b"uwsgi"):
                pids.append(pid)
        return pids

    def reload(self, timeout: float = 60.0) -> None:
        """Graceful reload (SIGHUP): workers finish their requests, then restart.

        Returns once every new worker has answered. uWSGI's master waits for
        all the old workers to exit before it forks new ones, so once there
        are ``processes`` new pids, every worker id that answers is a new one.
        """
        before = set(self.worker_pids())
        os.kill(self.uwsgi_pid, signal.SIGHUP)
        self._wait(
            lambda: (
                len(set(self.worker_pids()) - before) >= self.processes
                and self._every_worker_answers()
            ),
            timeout,
            "every reloaded worker to answer",
        )

    def stop(self, timeout: float = 30.0) -> None:
        """nginx, then uWSGI, finish their requests and exit (SIGQUIT, SIGTERM).

        SIGTERM is a graceful stop (app.ini's ``hook-master-start``): each
        worker ends its request and runs its exit hooks, the tracer's flush.
        """
        for process, stop_signal in (
            (self.nginx, signal.SIGQUIT),
            (self.uwsgi, signal.SIGTERM),
        ):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(stop_signal)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def ensure_default_model(stack: Stack) -> None:
    """Publish the embedded default model when MODEL_DIR holds none."""
    env = dict(os.environ, MODEL_DIR=str(stack.model_dir))
    subprocess.run(
        [stack.python, "-m", "app", "default-model"], cwd=REPO, env=env, check=True
    )


def write_samples(folder: Path) -> None:
    """Files for the banner's curl lines: two digit PNGs and a training .npz."""
    env = dict(os.environ, SAMPLES=str(folder))
    script = (
        "import os, numpy as np\n"
        "from PIL import Image\n"
        "from app.model import default_data\n"
        "d = default_data.load(); out = os.environ['SAMPLES']\n"
        "os.makedirs(out, exist_ok=True)\n"
        "images = d.raw.reshape(-1, 8, 8)\n"
        "Image.fromarray(images[d.labels == 1][0]).save(out + '/eight.png')\n"
        "Image.fromarray(images[d.labels == 0][0]).save(out + '/three.png')\n"
        "np.savez(out + '/digits.npz', images=images[..., None], labels=d.labels,\n"
        "         classes=np.array(d.classes))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve the app behind nginx on loopback."
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument(
        "--processes", type=int, default=int(os.environ.get("PROCESSES", "4"))
    )
    parser.add_argument("--var", default=os.environ.get("VAR_DIR", str(REPO / "var")))
    args = parser.parse_args(argv)

    # A generated admin token is kept in var/run/admin-token and reused by the
    # next `make run`, so a saved TOKEN=$(cat ...) keeps working.
    token_file = Path(args.var).resolve() / "run" / "admin-token"
    generated = "ADMIN_TOKEN" not in os.environ
    env = {}
    if generated and token_file.exists():
        env["ADMIN_TOKEN"] = token_file.read_text().strip()
    stack = Stack(var_dir=args.var, port=args.port, processes=args.processes, env=env)
    try:
        ensure_default_model(stack)
        write_samples(stack.var / "samples")
        stack.start()
    except (StackError, render.RenderError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        stack.stop()
        return 1

    if generated:
        descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(stack.admin_token)
    if stack.tracing_module:
        print("nginx tracing: nginx-opentracing and the LightStep plugin are loaded.")
    else:
        print(
            "nginx tracing: off, the nginx-opentracing module is not installed; "
            "the app still traces when LIGHTSTEP_ACCESS_TOKEN is set."
        )
    print(_banner(stack, token_file if generated else None), flush=True)

    stopping = []

    def request_stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    failed = False
    while not stopping:
        for name, process in (("uWSGI", stack.uwsgi), ("nginx", stack.nginx)):
            if process.poll() is not None:
                print(
                    f"{name} exited ({process.returncode}); stopping.", file=sys.stderr
                )
                failed = True
                stopping.append(0)
        time.sleep(0.2)

    print("stopping nginx and uWSGI ...", file=sys.stderr)
    stack.stop()
    print("stopped.", file=sys.stderr)
    return 1 if failed else 0


def _banner(stack: Stack, token_file) -> str:
    token = f"$(cat {token_file})" if token_file else "$ADMIN_TOKEN"
    url = stack.url
    samples = stack.var / "samples"
    return f"""
Serving on {url} with {stack.processes} uWSGI workers behind nginx.
Logs: {stack.log_dir}   Models: {stack.model_dir}

  curl -s {url}/api/v1/health
  curl -s {url}/api/v1/model
  curl -s -H 'Content-Type: image/png' --data-binary @{samples}/eight.png {url}/predict
  curl -s -F image=@{samples}/eight.png -F image=@{samples}/three.png \\
    {url}/api/v1/predict
  curl -s -H 'Content-Type: application/json' \\
    -d "{{\\"features\\": [$(seq -s, 0 4 252)]}}" {url}/predict
  curl -s -H "Authorization: Bearer {token}" -F data=@{samples}/digits.npz \\
    -F 'params={{"solver": "gd", "learning_rate": 0.005, "iterations": 2000}}' \\
    {url}/api/v1/train
  curl -s {url}/api/v1/train/<job_id from the answer above>

Ctrl-C stops everything.
"""


if __name__ == "__main__":
    sys.exit(main())
