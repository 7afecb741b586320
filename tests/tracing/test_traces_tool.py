"""`make traces`: the collector prints each trace as an indented tree."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import lightstep

REPO = Path(__file__).resolve().parents[2]


def test_traces_tool_prints_a_received_trace_as_a_tree():
    tool = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tools" / "traces.py"),
            "--port",
            "0",
            "--settle",
            "0.3",
            "--exit-after",
            "3",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = tool.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", banner).group(1))
        tracer = lightstep.Tracer(
            component_name="logreg-service",
            access_token="local",
            collector_host="127.0.0.1",
            collector_port=port,
            collector_encryption="none",
            use_http=True,
            disable_binary_format=True,
            periodic_flush_seconds=60,
        )
        with tracer.start_active_span(
            "POST /api/v1/predict",
            tags={"span.kind": "server", "http.status_code": 200},
        ) as scope:
            trace_id = format(scope.span.context.trace_id, "016x")
            with tracer.start_active_span("predict.score", tags={"batch_size": 3}):
                time.sleep(0.002)
        tracer.flush()

        output, _ = tool.communicate(timeout=20)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()

    lines = output.splitlines()
    start = lines.index(f"trace {trace_id}  (2 spans)")
    assert re.fullmatch(
        r"  POST /api/v1/predict  \d+\.\d ms  \[logreg-service\]"
        r"  http\.status_code=200",
        lines[start + 1],
    )
    assert re.fullmatch(
        r"    predict\.score  \d+\.\d ms  \[logreg-service\]  batch_size=3",
        lines[start + 2],
    )
