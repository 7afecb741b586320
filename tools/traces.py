"""``make traces``: see the service's traces without a LightStep account.

Runs the test collector (tests/doubles/lightstep_collector.py) on 127.0.0.1 and
prints each trace it receives as an indented tree: operation, duration, and
the tags that matter. Point the app at it with the variables it prints, then
send requests.

A trace is printed once no span of it has arrived for ``--settle`` seconds;
spans that come later (a training job's, say) are printed as a continuation.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.doubles.lightstep_collector import LightStepCollector  # noqa: E402

# Already in the span's name, or the same on every span.
_QUIET_TAGS = {"span.kind", "component", "http.method", "trace.incoming_format"}
_EVENTS_SHOWN = {"error", "client_error"}


def _duration(micros: int) -> str:
    if micros >= 1_000_000:
        return f"{micros / 1e6:.2f} s"
    return f"{micros / 1000:.1f} ms"


def _span_lines(span, depth: int) -> list[str]:
    indent = "  " * depth
    service = span["reporter_tags"].get("lightstep.component_name", "?")
    tags = " ".join(
        f"{key}={value}"
        for key, value in span["tags"].items()
        if key not in _QUIET_TAGS
    )
    lines = [
        f"{indent}{span['operation']}  {_duration(span['duration_micros'])}"
        f"  [{service}]  {tags}".rstrip()
    ]

    progress = [log for log in span["logs"] if log.get("event") == "progress"]
    if progress:
        last = progress[-1]
        lines.append(
            f"{indent}  ~ {len(progress)} progress logs, last {last.get('fraction')}"
            f" at iteration {last.get('iteration')}, loss {last.get('loss')}"
        )
    for log in span["logs"]:
        if log.get("event") in _EVENTS_SHOWN:
            lines.append(
                f"{indent}  ! {log['event']} {log.get('error.kind', '')}: "
                f"{log.get('message', '')}"
            )
    return lines


def render_trace(trace_id: str, spans: list[dict], continued: bool = False) -> str:
    """One trace as text: a tree by parent span id, siblings in start order."""
    ids = {span["span_id"] for span in spans}
    children: dict = {}
    roots = []
    for span in sorted(spans, key=lambda span: span["start"]):
        parent = span["parent_id"]
        if parent in ids:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)

    title = "continued" if continued else f"{len(spans)} spans"
    lines = [f"trace {trace_id}  ({title})"]

    def walk(span, depth):
        lines.extend(_span_lines(span, depth))
        for child in children.get(span["span_id"], []):
            walk(child, depth + 1)

    for root in roots:
        if root["parent_id"] is not None:
            lines.append(f"  (parent {root['parent_id']}: upstream, or printed before)")
        walk(root, 1)
    return "\n".join(lines)


class TracePrinter:
    """Collects spans by trace and prints each trace once it has settled."""

    def __init__(self, settle: float, out=sys.stdout):
        self._settle = settle
        self._out = out
        self._lock = threading.Lock()
        self._pending: dict = {}
        self._last_seen: dict = {}
        self._printed: set = set()

    def add(self, span: dict) -> None:
        with self._lock:
            self._pending.setdefault(span["trace_id"], []).append(span)
            self._last_seen[span["trace_id"]] = time.monotonic()

    def print_settled(self, everything: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            ready = [
                trace_id
                for trace_id, seen in self._last_seen.items()
                if everything or now - seen >= self._settle
            ]
            batches = [(trace_id, self._pending.pop(trace_id)) for trace_id in ready]
            for trace_id in ready:
                del self._last_seen[trace_id]
        for trace_id, spans in batches:
            continued = trace_id in self._printed
            self._printed.add(trace_id)
            print(render_trace(trace_id, spans, continued) + "\n", file=self._out)
        self._out.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8360, help="0 picks a free one")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds")
    parser.add_argument(
        "--exit-after", type=float, default=None, help="stop after this many seconds"
    )
    args = parser.parse_args(argv)

    printer = TracePrinter(args.settle)
    collector = LightStepCollector(port=args.port)
    collector.on_span = printer.add
    collector.start()
    print(
        f"LightStep collector listening on http://127.0.0.1:{collector.port}; "
        "run the app with\n"
        f"  LIGHTSTEP_ACCESS_TOKEN=local LIGHTSTEP_COLLECTOR_HOST=127.0.0.1 "
        f"LIGHTSTEP_COLLECTOR_PORT={collector.port} "
        "LIGHTSTEP_COLLECTOR_ENCRYPTION=none\n",
        flush=True,
    )

    deadline = None if args.exit_after is None else time.monotonic() + args.exit_after
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
            printer.print_settled()
    except KeyboardInterrupt:
        pass
    finally:
        collector.stop()
        printer.print_settled(everything=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
