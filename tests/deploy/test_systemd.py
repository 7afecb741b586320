"""The systemd units of a classic server install: what systemd itself checks."""

from __future__ import annotations

import configparser
import shutil
import subprocess

import pytest

from tests.conftest import REPO

UNITS = REPO / "deploy" / "systemd"


def unit(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
def test_uwsgi_unit_passes_systemd_analyze_verify(tmp_path):
    # The unit names the install paths; here they are the checkout's, so
    # systemd can check that ExecStart's program exists.
    text = (UNITS / "logreg-uwsgi.service").read_text()
    (tmp_path / "logreg-uwsgi.service").write_text(
        text.replace("/srv/logreg", str(REPO))
    )

    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "logreg-uwsgi.service")],
        capture_output=True,
        text=True,
    )

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_uwsgi_unit_owns_the_socket_folder_and_stops_with_sigterm():
    service = unit(UNITS / "logreg-uwsgi.service")["Service"]

    assert service["RuntimeDirectory"] == "logreg"
    assert service["RuntimeDirectoryMode"] == "0755"
    assert service["User"] == "logreg"
    assert service["SupplementaryGroups"] == "www-data"
    assert service["ExecStart"] == (
        "/srv/logreg/.venv/bin/uwsgi --ini /etc/logreg/uwsgi.ini"
    )
    # app.ini sets die-on-term, so SIGTERM stops rather than reloads.
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert service["Type"] == "notify"


def test_socket_path_agrees_between_unit_ini_and_nginx():
    service = unit(UNITS / "logreg-uwsgi.service")["Service"]
    server = (REPO / "deploy" / "nginx" / "logreg" / "server.conf").read_text()

    assert (
        "Environment=RUN_DIR=/run/logreg"
        in (UNITS / "logreg-uwsgi.service").read_text()
    )
    assert f"/run/{service['RuntimeDirectory']}/uwsgi.sock" in server


def test_nginx_drop_in_renders_the_plugin_config_before_nginx_t():
    text = (UNITS / "nginx.service.d" / "logreg.conf").read_text()
    starts = [line for line in text.splitlines() if line.startswith("ExecStartPre=")]

    assert starts == [
        "ExecStartPre=",
        "ExecStartPre=/srv/logreg/.venv/bin/python /srv/logreg/deploy/render.py "
        "lightstep-config /etc/nginx/lightstep-config.json",
        'ExecStartPre=/usr/sbin/nginx -t -q -g "daemon on; master_process on;"',
    ]
    assert "After=logreg-uwsgi.service" in text
