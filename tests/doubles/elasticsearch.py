"""An Elasticsearch test double that behaves like the real server on the wire.

Real HTTP on 127.0.0.1, the REST paths of 6.8, 7.x, 8.x and 9.x, the
``X-Elastic-Product`` header as those servers send it (from 7.14, never on a
401), the ``compatible-with`` media types each major accepts, real answer
shapes, and the real failure manners: cluster health on a missing index waits
for its ``timeout`` and answers 408, a failed node makes ``GET /_dangling``
answer 500 with ``_nodes.failures`` beside the other nodes' results.

The server runs in a thread of the test process and keeps all state there, so
an app in another process (uWSGI workers) sees every ``double.scenario``
change made by the test.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TAGLINE = "You Know, for Search"

VERSIONS = {"6": "6.8.23", "7": "7.17.25", "8": "8.15.3", "9": "9.1.5"}


@dataclass
class Node:
    node_id: str
    name: str = ""
    watcher_state: str = "started"
    watch_count: int = 2
    queue_size: int = 0
    max_size: int = 10


@dataclass
class Index:
    uuid: str
    health: str = "green"
    aliases: list = field(default_factory=list)
    state: str = "open"


def _default_nodes():
    return [
        Node("n1AAAAAAAAAAAAAAAAAAAA", "es-1"),
        Node("n2BBBBBBBBBBBBBBBBBBBB", "es-2"),
    ]


def _default_indices():
    return {
        ".watches": Index("wAtChEsCuRrEnTuUiD0001"),
        ".triggered_watches": Index("tRiGgErEdCuRrEnTuUiD01"),
    }


@dataclass
class Scenario:
    version: str = VERSIONS["8"]
    cluster_name: str = "double-cluster"
    nodes: list = field(default_factory=_default_nodes)
    manually_stopped: bool = False
    indices: dict = field(default_factory=_default_indices)
    # Entries as GET /_dangling lists them: index_name, index_uuid,
    # creation_date_millis, node_ids.
    dangling: list = field(default_factory=list)
    # Node ids whose dangling listing fails (500 with _nodes.failures).
    dangling_failed_nodes: list = field(default_factory=list)
    # Epoch millis of the newest result.execution_time; "now" keeps it fresh.
    last_execution_millis: object = "now"
    # None: security off. ("user", "password") and/or an API key otherwise.
    basic_auth: tuple | None = None
    api_key: str | None = None
    # Authenticated, but without the privileges for anything beyond GET /.
    forbidden: bool = False
    license_compliant: bool = True
    # Path prefixes whose requests hang (never answer until released); "/" is all.
    hang_paths: list = field(default_factory=list)
    hang_seconds: float = 30.0
    # Path prefix -> status, answered with an error body instead of the real one.
    fail_paths: dict = field(default_factory=dict)
    # Answer every request with a 200 HTML page (a proxy or another product).
    garbage: bool = False
    # Cap on how long cluster health waits for a missing index.
    max_health_wait: float = 5.0

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def version_tuple(self):
        return tuple(int(p) for p in self.version.split(".")[:3])


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes


class ElasticsearchDouble:
    """``with ElasticsearchDouble(Scenario(...)) as es: ... es.url ...``"""

    def __init__(self, scenario: Scenario | None = None):
        self.scenario = scenario or Scenario()
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.double = self
        self._thread = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with_auth(self) -> str:
        user, password = self.scenario.basic_auth
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def start(self):
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def calls(self, method=None, path=None) -> list[RecordedRequest]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or r.path == path)
            ]

    def clear_requests(self):
        with self.lock:
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Elasticsearch sets TCP_NODELAY (http.tcp.no_delay); without it the body,
    # written after the headers, waits out the client's delayed ACK: 40 ms a
    # call on a kept-alive connection.
    disable_nagle_algorithm = True
    server_version = "double"
    sys_version = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    def do_PUT(self):
        self._serve("PUT")

    def do_HEAD(self):
        self._serve("HEAD")

    # -- plumbing ---------------------------------------------------------------

    def _serve(self, method):
        double = self.server.double
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with double.lock:
            double.requests.append(
                RecordedRequest(
                    method,
                    path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
            )
            scenario = double.scenario

        if any(path.startswith(p) for p in scenario.hang_paths):
            double.release.wait(scenario.hang_seconds)
            self.close_connection = True
            return
        if scenario.garbage:
            self._send(200, "<html><body>It works!</body></html>", "text/html")
            return

        status, payload, extra = _Api(
            double, scenario, method, path, query, self.headers, body
        ).answer()
        self._send(status, payload, extra_headers=extra, method=method)

    def _send(
        self, status, payload, content_type=None, extra_headers=None, method="GET"
    ):
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode()
            content_type = content_type or "application/json"
        else:
            data = str(payload).encode()
            content_type = content_type or "text/plain; charset=UTF-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)


def _error(status, type_, reason, **extra):
    cause = {"type": type_, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


class _Api:
    def __init__(self, double, scenario, method, path, query, headers, body):
        self.double = double
        self.s = scenario
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.extra = {}

    def answer(self):
        status, payload = self._answer()
        if self.s.version_tuple >= (7, 14) and status != 401:
            self.extra["X-elastic-product"] = "Elasticsearch"
        if "filter_path" in self.query and isinstance(payload, dict) and status < 300:
            payload = filter_path(payload, self.query["filter_path"])
        return status, payload, self.extra

    def _answer(self):
        rejected = self._media_types()
        if rejected:
            return rejected
        denied = self._authenticate()
        if denied:
            return denied

        for prefix, status in self.s.fail_paths.items():
            if self.path.startswith(prefix):
                return status, _error(status, "exception", "injected failure")

        route = self._route()
        if route is None:
            return 400, {
                "error": f"no handler found for uri [{self.path}] and method "
                f"[{self.method}]"
            }
        if self.s.forbidden and self.path != "/":
            return 403, _error(
                403,
                "security_exception",
                f"action [{route[1]}] is unauthorized for user [watcher_reader]",
            )
        if route[1].startswith("cluster:monitor/xpack/watcher") or route[1].startswith(
            "cluster:admin/xpack/watcher"
        ):
            if not self.s.license_compliant:
                return 403, _error(
                    403,
                    "security_exception",
                    "current license is non-compliant for [watcher]",
                    **{"license.expired.feature": "watcher"},
                )
        return route[0]()

    def _media_types(self):
        found = {}
        for header in ("Accept", "Content-Type"):
            value = self.headers.get(header) or ""
            match = re.search(r"compatible-with\s*=\s*(\d+)", value)
            if "vnd.elasticsearch" in value:
                found[header] = (value, int(match.group(1)) if match else None)
        if not found:
            return None

        major = self.s.major
        if major < 7:
            # 6.x does not know the vendor media types at all.
            if "Content-Type" in found and self.body:
                value = found["Content-Type"][0]
                return 406, {
                    "error": f"Content-Type header [{value}] is not supported",
                    "status": 406,
                }
            return None
        allowed = {7: {7}, 8: {7, 8}, 9: {8, 9}}.get(major, {major, major - 1})
        for header, (value, wanted) in found.items():
            if wanted not in allowed:
                versions = " or ".join(str(v) for v in sorted(allowed, reverse=True))
                return 400, _error(
                    400,
                    "media_type_header_exception",
                    f"Invalid media-type value on headers [{header}]",
                    caused_by={
                        "type": "status_exception",
                        "reason": f"{header} version must be either version "
                        f"{versions}, but found {wanted}. {header}={value}",
                    },
                )
        return None

    def _authenticate(self):
        if self.s.basic_auth is None and self.s.api_key is None:
            return None
        header = self.headers.get("Authorization") or ""
        scheme, _, credentials = header.partition(" ")
        ok = False
        user = "_anonymous"
        if scheme.lower() == "basic" and self.s.basic_auth:
            try:
                user, _, password = (
                    base64.b64decode(credentials).decode().partition(":")
                )
            except ValueError:
                password = None
            ok = (user, password) == tuple(self.s.basic_auth)
        elif scheme.lower() == "apikey" and self.s.api_key:
            ok = credentials == self.s.api_key
            user = "api_key"
        if ok:
            return None

        self.extra["WWW-Authenticate"] = 'Basic realm="security" charset="UTF-8"'
        reason = (
            f"missing authentication credentials for REST request [{self.path}]"
            if not header
            else f"unable to authenticate user [{user}] for REST request [{self.path}]"
        )
        return 401, _error(
            401,
            "security_exception",
            reason,
            header={"WWW-Authenticate": ['Basic realm="security" charset="UTF-8"']},
        )

    # -- routing ----------------------------------------------------------------

    def _route(self):
        m, p, major = self.method, self.path, self.s.major
        watcher_prefixes = ["/_xpack/watcher"] if major == 6 else ["/_watcher"]
        if major == 7:
            watcher_prefixes.append("/_xpack/watcher")
        if (m, p) in (("GET", "/"), ("HEAD", "/")):
            return self._info, "cluster:monitor/main"
        for prefix in watcher_prefixes:
            if m == "GET" and p == f"{prefix}/stats":
                return self._watcher_stats, "cluster:monitor/xpack/watcher/stats/dist"
            if m == "POST" and p == f"{prefix}/_start":
                return self._watcher_start, "cluster:admin/xpack/watcher/service"
            if m == "POST" and p == f"{prefix}/_stop":
                return self._watcher_stop, "cluster:admin/xpack/watcher/service"
            if m == "POST" and p == f"{prefix}/_restart" and major == 6:
                return self._watcher_restart, "cluster:admin/xpack/watcher/service"
        if m == "GET" and p.startswith("/_cluster/state/metadata"):
            return self._cluster_state, "cluster:monitor/state"
        if m == "GET" and p.startswith("/_cluster/health"):
            return self._health, "cluster:monitor/health"
        if self.s.version_tuple >= (7, 9):
            if m == "GET" and p == "/_dangling":
                return self._dangling_list, "indices:admin/dangling/list"
            if m == "DELETE" and p.startswith("/_dangling/"):
                return self._dangling_delete, "indices:admin/dangling/delete"
        elif p.startswith("/_dangling"):
            return lambda: (
                400,
                _error(
                    400,
                    "invalid_index_name_exception",
                    "Invalid index name [_dangling], must not start with '_'.",
                    index="_dangling",
                ),
            ), "indices:admin/get"
        if m in ("GET", "POST") and p.endswith("/_search"):
            return self._search, "indices:data/read/search"
        if m == "GET" and p == "/_nodes/stats/fs":
            return self._nodes_fs, "cluster:monitor/nodes/stats"
        return None

    # -- answers ----------------------------------------------------------------

    def _info(self):
        return 200, {
            "name": self.s.nodes[0].name or "node",
            "cluster_name": self.s.cluster_name,
            "cluster_uuid": "dOuBlEcLuStErUuId00001",
            "version": {
                "number": self.s.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0" * 40,
                "build_date": "2024-01-01T00:00:00.000000Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": TAGLINE,
        }

    def _nodes_header(self, failed=()):
        total = len(self.s.nodes)
        header = {
            "total": total,
            "successful": total - len(failed),
            "failed": len(failed),
        }
        if failed:
            header["failures"] = [
                {
                    "type": "failed_node_exception",
                    "reason": f"Failed node [{node_id}]",
                    "node_id": node_id,
                    "caused_by": {
                        "type": "node_not_connected_exception",
                        "reason": f"[{node_id}] Node not connected",
                    },
                }
                for node_id in failed
            ]
        return header

    def _watcher_stats(self):
        return 200, {
            "_nodes": self._nodes_header(),
            "cluster_name": self.s.cluster_name,
            "manually_stopped": self.s.manually_stopped,
            "stats": [
                {
                    "node_id": n.node_id,
                    "watcher_state": n.watcher_state,
                    "watch_count": n.watch_count,
                    "execution_thread_pool": {
                        "queue_size": n.queue_size,
                        "max_size": n.max_size,
                    },
                }
                for n in self.s.nodes
            ],
        }

    def _stale_copy_present(self):
        for entry in self.s.dangling:
            current = self.s.indices.get(entry["index_name"])
            if current and current.uuid != entry["index_uuid"]:
                if entry["index_name"].startswith(".watches"):
                    return True
        return False

    def _watcher_stop(self):
        with self.double.lock:
            for n in self.s.nodes:
                n.watcher_state = "stopped"
            self.s.manually_stopped = True
        return 200, {"acknowledged": True}

    def _watcher_start(self):
        with self.double.lock:
            for n in self.s.nodes:
                n.watcher_state = "started"
            self.s.manually_stopped = False
            # The stale copy keeps watches from executing; once it is gone a
            # fresh start runs them again.
            if not self._stale_copy_present():
                self.s.last_execution_millis = "now"
        return 200, {"acknowledged": True}

    def _watcher_restart(self):
        self._watcher_stop()
        return self._watcher_start()

    def _resolve(self, expression):
        names = []
        for part in expression.split(","):
            if not part:
                continue
            for name, index in self.s.indices.items():
                if fnmatch.fnmatchcase(name, part) or part in index.aliases:
                    if name not in names:
                        names.append(name)
        return names

    def _cluster_state(self):
        expression = self.path[len("/_cluster/state/metadata") :].lstrip("/")
        names = self._resolve(expression) if expression else list(self.s.indices)
        indices = {}
        for name in names:
            index = self.s.indices[name]
            indices[name] = {
                "version": 7,
                "mapping_version": 1,
                "settings_version": 1,
                "aliases_version": 1,
                "routing_num_shards": 1,
                "state": index.state,
                "settings": {
                    "index": {
                        "uuid": index.uuid,
                        "number_of_shards": "1",
                        "number_of_replicas": "1",
                        "provided_name": name,
                        "creation_date": "1700000000000",
                        "version": {"created": "8500003"},
                    }
                },
                "mappings": {"_doc": {"dynamic": "strict"}},
                "aliases": list(index.aliases),
                "primary_terms": {"0": 1},
                "in_sync_allocations": {"0": ["aLlOcAtIoNiD"]},
            }
        return 200, {
            "cluster_name": self.s.cluster_name,
            "cluster_uuid": "dOuBlEcLuStErUuId00001",
            "metadata": {
                "cluster_uuid": "dOuBlEcLuStErUuId00001",
                "cluster_uuid_committed": True,
                "templates": {"a-large-template": {"order": 0}},
                "indices": indices,
            },
        }

    def _health(self):
        expression = self.path[len("/_cluster/health") :].lstrip("/")
        wanted = [p for p in expression.split(",") if p]
        names = self._resolve(expression) if wanted else list(self.s.indices)
        missing = [w for w in wanted if "*" not in w and not self._resolve(w)]
        rank = {"green": 0, "yellow": 1, "red": 2}
        statuses = [self.s.indices[n].health for n in names] or ["green"]
        body = {
            "cluster_name": self.s.cluster_name,
            "status": max(statuses, key=rank.get),
            "timed_out": False,
            "number_of_nodes": len(self.s.nodes),
            "number_of_data_nodes": len(self.s.nodes),
            "active_primary_shards": len(names),
            "active_shards": len(names) * 2,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        }
        if missing:
            # The real server waits for the index to appear, then gives up.
            wait = min(
                parse_time(self.query.get("timeout", "30s")), self.s.max_health_wait
            )
            self.double.release.wait(wait)
            body.update(status="red", timed_out=True)
            return 408, body
        if self.query.get("level") == "indices":
            body["indices"] = {}
            for name in names:
                health = self.s.indices[name].health
                body["indices"][name] = {
                    "status": health,
                    "number_of_shards": 1,
                    "number_of_replicas": 1,
                    "active_primary_shards": 0 if health == "red" else 1,
                    "active_shards": {"green": 2, "yellow": 1, "red": 0}[health],
                    "relocating_shards": 0,
                    "initializing_shards": 0,
                    "unassigned_shards": {"green": 0, "yellow": 1, "red": 2}[health],
                }
        return 200, body

    def _dangling_list(self):
        failed = [n for n in self.s.dangling_failed_nodes]
        listed = []
        for entry in self.s.dangling:
            node_ids = [n for n in entry["node_ids"] if n not in failed]
            if node_ids:
                listed.append({**entry, "node_ids": node_ids})
        body = {
            "_nodes": self._nodes_header(failed),
            "cluster_name": self.s.cluster_name,
            "dangling_indices": listed,
        }
        return (500 if failed else 200), body

    def _dangling_delete(self):
        uuid = self.path[len("/_dangling/") :]
        if self.query.get("accept_data_loss") != "true":
            return 400, _error(
                400,
                "illegal_argument_exception",
                "accept_data_loss must be set to true",
            )
        with self.double.lock:
            for entry in self.s.dangling:
                if entry["index_uuid"] == uuid:
                    self.s.dangling.remove(entry)
                    return 200, {"acknowledged": True}
        return 400, _error(
            400,
            "illegal_argument_exception",
            f"No dangling index found for UUID [{uuid}]",
        )

    def _search(self):
        last = self.s.last_execution_millis
        if last == "now":
            last = int(time.time() * 1000)
        hits_total = 5 if last is not None else 0
        total = (
            hits_total if self.s.major < 7 else {"value": hits_total, "relation": "eq"}
        )
        aggregation = {"value": last}
        if last is not None:
            aggregation["value_as_string"] = time.strftime(
                "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(last / 1000)
            )
        return 200, {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": total, "max_score": None, "hits": []},
            "aggregations": {"last_execution": aggregation},
        }

    def _nodes_fs(self):
        layout = "/nodes/0" if self.s.major < 8 else ""
        return 200, {
            "_nodes": self._nodes_header(),
            "cluster_name": self.s.cluster_name,
            "nodes": {
                n.node_id: {
                    "name": n.name,
                    "host": "127.0.0.1",
                    "fs": {"data": [{"path": f"/var/lib/elasticsearch{layout}"}]},
                }
                for n in self.s.nodes
            },
        }


def parse_time(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", value.strip())
    if not match:
        return 30.0
    number, unit = float(match.group(1)), match.group(2) or "ms"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def filter_path(body, expression: str):
    """Elasticsearch's ``filter_path``: keep only the dotted paths asked for."""
    patterns = [p.split(".") for p in expression.split(",") if p]
    return _filter(body, patterns) or {}


def _filter(value, patterns):
    if any(not p for p in patterns):
        return copy.deepcopy(value)
    if isinstance(value, list):
        kept = [_filter(v, patterns) for v in value]
        return [k for k in kept if k not in (None, {}, [])]
    if not isinstance(value, dict):
        return None
    out = {}
    for key, child in value.items():
        rest = [p[1:] for p in patterns if fnmatch.fnmatchcase(key, p[0])]
        if rest:
            kept = _filter(child, rest)
            if kept not in (None, {}, []):
                out[key] = kept
    return out
