"""The Watcher health report: what each call to the cluster says, as findings.

A finding is ``{"code", "severity", "message", "nodes", "evidence", "remedy"}``.
Severity ``critical`` means watches are not (or not all) executing, ``warning``
means they execute but something needs attention, ``info`` changes nothing.
The report's ``status`` follows from them: ``unknown`` when the cluster could
not be read at all, else ``red`` on any critical, ``yellow`` on any warning,
``green`` otherwise.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from app.watcher.client import (
    DANGLING_API_VERSION,
    MINIMUM_VERSION,
    ClusterClient,
    NotElasticsearch,
    OutOfTime,
    Unreachable,
)

log = logging.getLogger(__name__)

CRITICAL, WARNING, INFO = "critical", "warning", "info"

WATCHES = ".watches"
TRIGGERED_WATCHES = ".triggered_watches"

# Codes that mean "the cluster could not be read", which makes the status
# unknown rather than red: nothing is known about the watches themselves.
_BLIND_CODES = {
    "elasticsearch_not_configured",
    "elasticsearch_unreachable",
    "elasticsearch_auth_failed",
    "elasticsearch_unsupported",
}

# Watcher normally leaves `starting` within seconds; a node seen starting for
# longer than this, with no visible cause, is reported as stuck.
STARTING_GRACE_SECONDS = 60.0

# Watcher's execution queue holds 1000 entries by default
# (xpack.watcher.thread_pool.queue_size); beyond it executions are rejected.
# Limitation: a cluster that changed that setting is still judged against 1000.
QUEUE_REJECT_SIZE = 1000

# The whole report may take this many ELASTICSEARCH_TIMEOUTs, however slow
# each answer is, so a hanging cluster never holds a worker for long.
BUDGET_TIMEOUTS = 3.0

_SEVERITY_ORDER = {CRITICAL: 0, WARNING: 1, INFO: 2}

# node id -> monotonic time this process first saw it `starting`.
_starting_since: dict[str, float] = {}
_starting_lock = threading.Lock()


def finding(code, severity, message, nodes=(), evidence=None, remedy=None) -> dict:
    return {
        "code": code,
        "severity": severity,
        "message": message,
        "nodes": sorted(nodes),
        "evidence": evidence or {},
        "remedy": remedy,
    }


def status_of(findings: list[dict]) -> str:
    if any(f["code"] in _BLIND_CODES for f in findings):
        return "unknown"
    severities = {f["severity"] for f in findings}
    if CRITICAL in severities:
        return "red"
    if WARNING in severities:
        return "yellow"
    return "green"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def forget_starting_nodes() -> None:
    """Clear the memory of nodes seen starting (tests, and after a remedy)."""
    with _starting_lock:
        _starting_since.clear()


def not_configured_report() -> dict:
    report = _empty_report()
    report["findings"].append(
        finding(
            "elasticsearch_not_configured",
            CRITICAL,
            "No Elasticsearch cluster is configured, so Watcher cannot be checked. "
            "Set ELASTICSEARCH_URL (for example https://user:password@host:9200) "
            "and, if needed, ELASTICSEARCH_API_KEY and ELASTICSEARCH_CA_FILE.",
            remedy="Set ELASTICSEARCH_URL in the service's environment and restart.",
        )
    )
    return _finish(report)


def build_report(settings, client: ClusterClient | None = None) -> dict:
    """Read the cluster once and return the full report; never raises on ES."""
    if not settings.elasticsearch_url:
        return not_configured_report()

    own_client = client is None
    if own_client:
        try:
            client = ClusterClient(settings)
        except ValueError as error:
            report = _empty_report()
            report["findings"].append(
                finding("elasticsearch_unreachable", CRITICAL, str(error))
            )
            return _finish(report)

    client.deadline = (
        time.monotonic() + BUDGET_TIMEOUTS * settings.elasticsearch_timeout
    )
    try:
        return _Run(client, settings).report()
    finally:
        client.deadline = None
        if own_client:
            client.close()


class _Run:
    """One pass over the cluster; each step adds to ``findings`` and ``facts``."""

    def __init__(self, client: ClusterClient, settings):
        self.client = client
        self.settings = settings
        self.report_ = _empty_report()
        self.findings = self.report_["findings"]
        self.metadata: dict[str, dict] = {}
        self.present: dict[str, list[str]] = {}
        self.health: dict[str, str] = {}
        self.stale_copies: list[dict] = []

    def add(self, *args, **kwargs) -> None:
        self.findings.append(finding(*args, **kwargs))

    def report(self) -> dict:
        if not self._connect():
            return _finish(self.report_)

        steps = [
            ("watcher stats", self._watcher_stats),
            ("index metadata", self._indices),
            ("index health", self._index_health),
            ("dangling indices", self._dangling),
            ("watch history", self._history),
        ]
        for label, step in steps:
            try:
                if step() is False:
                    break
            except OutOfTime:
                self.add(
                    "check_incomplete",
                    WARNING,
                    f"The {label} check was skipped: the report's time budget "
                    f"({BUDGET_TIMEOUTS:g} x ELASTICSEARCH_TIMEOUT) was spent "
                    "waiting for slower answers.",
                    evidence={"check": label},
                    remedy="Look at the cluster's load, or raise "
                    "ELASTICSEARCH_TIMEOUT.",
                )
                break
            except (Unreachable, NotElasticsearch) as error:
                self.add(
                    "check_incomplete",
                    WARNING,
                    f"The {label} check could not finish: {error}.",
                    evidence={"check": label},
                )

        self._stuck_starting()
        return _finish(self.report_)

    # -- GET / ------------------------------------------------------------------

    def _connect(self) -> bool:
        try:
            response = self.client.discover()
        except (Unreachable, OutOfTime) as error:
            self.add(
                "elasticsearch_unreachable",
                CRITICAL,
                f"Elasticsearch at ELASTICSEARCH_URL did not answer GET /: {error}.",
                evidence={"timed_out": getattr(error, "timed_out", True)},
                remedy="Check that the cluster is up and that this host can reach "
                "it (address, port, firewall, TLS settings).",
            )
            return False
        except NotElasticsearch as error:
            self.add(
                "elasticsearch_unsupported",
                CRITICAL,
                f"The server at ELASTICSEARCH_URL is not a supported Elasticsearch: "
                f"{error}.",
                remedy="Point ELASTICSEARCH_URL at an Elasticsearch 6.8 to 9.x node.",
            )
            return False

        if response.status in (401, 403):
            self._auth_failed(response, "GET /")
            return False
        if not response.ok:
            self.add(
                "elasticsearch_unreachable",
                CRITICAL,
                f"GET / answered HTTP {response.status} "
                f"({response.error_type() or 'no error type'}).",
                evidence={"http_status": response.status},
                remedy="Check the cluster's own health and logs.",
            )
            return False

        info = self.client.info
        self.report_["elasticsearch"] = {
            "version": info.number,
            "cluster_name": info.cluster_name,
        }
        if info.version < MINIMUM_VERSION + (0,):
            self.add(
                "elasticsearch_unsupported",
                CRITICAL,
                f"Elasticsearch {info.number} is older than 6.8, the oldest "
                "release these checks know.",
                remedy="Upgrade the cluster to 6.8 or later.",
            )
            return False
        return True

    def _auth_failed(self, response, what: str) -> None:
        self.add(
            "elasticsearch_auth_failed",
            CRITICAL,
            f"Elasticsearch refused {what} with HTTP {response.status}: "
            f"{response.error_reason() or response.error_type()}",
            evidence={"http_status": response.status, "type": response.error_type()},
            remedy="Check the user:password in ELASTICSEARCH_URL or "
            "ELASTICSEARCH_API_KEY; the user needs the monitor_watcher and "
            "monitor cluster privileges (manage_watcher and manage to remediate).",
        )

    # -- watcher stats ----------------------------------------------------------

    def _watcher_stats(self):
        path = self.client.watcher_path("stats")
        response = self.client.watcher_stats()
        if response.status == 403 and _is_license_error(response):
            self.add(
                "watcher_not_licensed",
                CRITICAL,
                "The cluster's license does not allow Watcher: "
                f"{response.error_reason()}. No watch executes.",
                evidence={"http_status": 403, "type": response.error_type()},
                remedy="Install a license that includes Watcher (Gold or higher, "
                "or a trial), or renew the expired one.",
            )
            return False
        if response.status in (401, 403):
            self._auth_failed(response, f"GET {path}")
            return False
        if not response.ok or not isinstance(response.body, dict):
            raise Unreachable(f"GET {path} answered HTTP {response.status}")

        body = response.body
        nodes = []
        for entry in body.get("stats") or []:
            pool = entry.get("execution_thread_pool") or {}
            nodes.append(
                {
                    "node_id": entry.get("node_id"),
                    "watcher_state": entry.get("watcher_state"),
                    "watch_count": entry.get("watch_count", 0),
                    "execution_queue": {
                        "queue_size": pool.get("queue_size", 0),
                        "max_size": pool.get("max_size", 0),
                    },
                }
            )
        states = {node["watcher_state"] for node in nodes}
        watcher = self.report_["watcher"]
        watcher["state"] = states.pop() if len(states) == 1 else "mixed"
        watcher["manually_stopped"] = bool(body.get("manually_stopped", False))
        watcher["watch_count"] = sum(node["watch_count"] or 0 for node in nodes)
        watcher["nodes"] = nodes

        failed = (body.get("_nodes") or {}).get("failed", 0)
        if failed:
            self.add(
                "check_incomplete",
                WARNING,
                f"{failed} node(s) did not answer the watcher stats request, so "
                "their Watcher state is unknown.",
                evidence={"_nodes": body.get("_nodes")},
            )

        self._judge_states(nodes, watcher)
        self._judge_queues(nodes)
        return True

    def _judge_states(self, nodes, watcher) -> None:
        start = f"POST {self.client.watcher_path('_start')}"
        by_state: dict[str, list[str]] = {}
        for node in nodes:
            by_state.setdefault(node["watcher_state"], []).append(node["node_id"])
        started = by_state.get("started", [])
        not_started = [n["node_id"] for n in nodes if n["watcher_state"] != "started"]

        if nodes and not started and not by_state.get("starting"):
            manual = watcher["manually_stopped"]
            why = (
                "it was stopped through the API (manually_stopped is true)"
                if manual
                else "it stopped on its own (manually_stopped is false; look in "
                "the nodes' logs for why)"
            )
            self.add(
                "watcher_stopped",
                CRITICAL,
                f"Watcher is not running on any node: {why}. No watch executes.",
                nodes=not_started,
                evidence={
                    "manually_stopped": manual,
                    "states": {k: sorted(v) for k, v in by_state.items()},
                },
                remedy=f"{start}, or POST /api/v1/health/watcher/remediate.",
            )
            return

        # A node in `starting` is judged by its own finding, which gives it a
        # grace period; counting it here too would turn every rolling restart
        # red at once.
        down = [n for n in not_started if n not in by_state.get("starting", [])]
        if started and down:
            self.add(
                "watcher_state_mixed",
                CRITICAL,
                f"Watcher is started on {len(started)} node(s) but not on "
                f"{len(down)}; watches whose shards live on those nodes do "
                "not execute.",
                nodes=down,
                evidence={"states": {k: sorted(v) for k, v in by_state.items()}},
                remedy=f"Restart Watcher (POST {self.client.watcher_path('_stop')}"
                f", then {start}), or POST /api/v1/health/watcher/remediate.",
            )

    def _judge_queues(self, nodes) -> None:
        full, busy = [], []
        for node in nodes:
            queue = node["execution_queue"]
            size, threads = queue["queue_size"] or 0, queue["max_size"] or 0
            if size >= QUEUE_REJECT_SIZE:
                full.append(node["node_id"])
            elif size > 0 and size >= max(threads, 1):
                busy.append(node["node_id"])
        if not full and not busy:
            return

        queues = {
            n["node_id"]: n["execution_queue"]
            for n in nodes
            if n["node_id"] in full + busy
        }
        if full:
            message = (
                f"The execution queue holds {QUEUE_REJECT_SIZE} or more watches on "
                f"{len(full)} node(s); further executions are rejected."
            )
        else:
            message = (
                "More watches are queued than there are execution threads on "
                f"{len(busy)} node(s); executions run late."
            )
        self.add(
            "execution_queue_saturated",
            CRITICAL if full else WARNING,
            message,
            nodes=full + busy,
            evidence={"queues": queues, "reject_size": QUEUE_REJECT_SIZE},
            remedy="Find slow watches (GET _watcher/stats/current_watches), lengthen "
            "their intervals or inputs' timeouts, or add nodes.",
        )

    # -- .watches and .triggered_watches metadata -------------------------------

    def _indices(self):
        expression = f"{WATCHES}*,{TRIGGERED_WATCHES}*"
        response = self.client.index_metadata(expression)
        if response.status in (401, 403):
            self._auth_failed(response, "GET /_cluster/state/metadata")
            return False
        if not response.ok or not isinstance(response.body, dict):
            raise Unreachable(
                f"GET /_cluster/state/metadata answered HTTP {response.status}"
            )

        indices = ((response.body.get("metadata") or {}).get("indices")) or {}
        for name, meta in indices.items():
            uuid = ((meta.get("settings") or {}).get("index") or {}).get("uuid")
            self.metadata[name] = {
                "uuid": uuid,
                "state": meta.get("state"),
                "aliases": list(meta.get("aliases") or []),
            }

        for logical in (WATCHES, TRIGGERED_WATCHES):
            self.present[logical] = sorted(
                name
                for name, meta in self.metadata.items()
                if name == logical or logical in meta["aliases"]
            )

        if not self.present[WATCHES]:
            self.add(
                "watches_index_missing",
                CRITICAL,
                "The cluster has no .watches index (nor an alias of that name), "
                "so Watcher has no watches to run.",
                evidence={"indices_found": sorted(self.metadata)},
                remedy="Restore .watches from a snapshot, or recreate the watches "
                "(PUT _watcher/watch/<id>).",
            )
        if not self.present[TRIGGERED_WATCHES]:
            self.add(
                "triggered_watches_missing",
                WARNING,
                "The cluster has no .triggered_watches index: Watcher cannot record "
                "triggered watches, so a node restart loses pending executions, "
                "and Watcher may fail to start on some versions.",
                evidence={"indices_found": sorted(self.metadata)},
                remedy="Restart Watcher so it recreates .triggered_watches from its "
                "template; if that fails, check the index template "
                ".triggered_watches exists.",
            )
        return True

    def _index_health(self):
        names = sorted(
            set(self.present.get(WATCHES, []))
            | set(self.present.get(TRIGGERED_WATCHES, []))
        )
        if not names:
            return True

        response = self.client.index_health(names)
        if response.status == 408:
            raise Unreachable("cluster health timed out waiting for the indices")
        if not response.ok or not isinstance(response.body, dict):
            raise Unreachable(f"GET /_cluster/health answered HTTP {response.status}")

        per_index = response.body.get("indices") or {}
        unhealthy = {}
        for name in names:
            status = (per_index.get(name) or {}).get("status")
            self.health[name] = status
            if status in ("red", "yellow"):
                unhealthy[name] = per_index[name]
        if not unhealthy:
            return True

        red = any(entry.get("status") == "red" for entry in unhealthy.values())
        listed = ", ".join(f"{n} is {e.get('status')}" for n, e in unhealthy.items())
        self.add(
            "watches_index_unhealthy",
            CRITICAL if red else WARNING,
            f"Watcher's indices are not all green: {listed}. "
            + (
                "A red index has unassigned primaries; the watches on them do not run."
                if red
                else "Replicas are unassigned; watches run, but a node loss "
                "would stop some."
            ),
            evidence={
                name: {
                    key: entry.get(key)
                    for key in (
                        "status",
                        "number_of_shards",
                        "number_of_replicas",
                        "active_primary_shards",
                        "unassigned_shards",
                    )
                }
                for name, entry in unhealthy.items()
            },
            remedy="GET _cluster/allocation/explain to see why shards are unassigned.",
        )
        return True

    # -- dangling .watches copies -----------------------------------------------

    def _dangling(self):
        info = self.client.info
        if not self.client.has_dangling_api:
            self.add(
                "check_not_supported",
                INFO,
                f"Elasticsearch {info.number} has no dangling indices API (it "
                f"arrived in {'.'.join(map(str, DANGLING_API_VERSION))}), so a stale "
                ".watches copy on a node cannot be seen from here.",
                evidence={"check": "dangling_watches_index"},
                remedy="Search each node's log for 'can not be imported as a "
                "dangling index'; POST /api/v1/health/watcher/remediate with "
                '{"dry_run": true} lists the manual steps.',
            )
            return True

        response = self.client.dangling_indices()
        body = response.body if isinstance(response.body, dict) else {}
        if response.status in (401, 403):
            self._auth_failed(response, "GET /_dangling")
            return False
        # A node failure makes the API answer 500 with the other nodes' results.
        if not response.ok and "dangling_indices" not in body:
            raise Unreachable(f"GET /_dangling answered HTTP {response.status}")
        if not response.ok:
            failures = (body.get("_nodes") or {}).get("failures") or []
            self.add(
                "check_incomplete",
                WARNING,
                f"{len(failures)} node(s) failed to list their dangling indices; "
                "a stale .watches copy on them would not show here.",
                nodes=[f.get("node_id") for f in failures if f.get("node_id")],
                evidence={"_nodes": body.get("_nodes")},
            )

        stale, orphans = find_stale_copies(
            body.get("dangling_indices") or [], self.metadata
        )
        self.stale_copies = stale
        for copy in stale:
            self.add(
                "dangling_watches_index",
                CRITICAL,
                f"Node(s) {', '.join(copy['node_ids'])} keep a stale copy of "
                f"{copy['index_name']} (uuid {copy['index_uuid']}) that cannot be "
                "imported because an index of that name is already in the cluster "
                f"metadata (uuid {copy['current_uuid']}); Watcher stops executing "
                "watches while it is there.",
                nodes=copy["node_ids"],
                evidence={
                    "index_name": copy["index_name"],
                    "stale_uuid": copy["index_uuid"],
                    "current_uuid": copy["current_uuid"],
                    "creation_date_millis": copy["creation_date_millis"],
                },
                remedy=f"DELETE /_dangling/{copy['index_uuid']}?accept_data_loss=true,"
                " then restart Watcher; or POST /api/v1/health/watcher/remediate.",
            )
        if orphans:
            for f in self.findings:
                if f["code"] == "watches_index_missing":
                    f["evidence"]["dangling_copies"] = orphans
                    f["remedy"] += (
                        " A dangling copy exists and may hold the watches: "
                        "import it with POST /_dangling/<uuid>?accept_data_loss=true."
                    )
        return True

    # -- watch history ----------------------------------------------------------

    def _history(self):
        watcher = self.report_["watcher"]
        if not watcher["watch_count"]:
            return True

        response = self.client.last_execution()
        if not response.ok or not isinstance(response.body, dict):
            raise Unreachable(
                f"the watch history search answered HTTP {response.status}"
            )

        aggregation = (response.body.get("aggregations") or {}).get("last_execution")
        millis = (aggregation or {}).get("value")
        stale_after = self.settings.watcher_stale_seconds
        if millis is None:
            watcher["last_execution"] = None
            age = None
        else:
            executed = datetime.fromtimestamp(millis / 1000, UTC)
            watcher["last_execution"] = executed.isoformat(timespec="seconds").replace(
                "+00:00", "Z"
            )
            age = time.time() - millis / 1000
            if age <= stale_after:
                return True

        when = (
            "no execution is recorded in the watch history"
            if age is None
            else f"the newest execution is {int(age)} s old"
        )
        self.add(
            "watches_not_executing",
            CRITICAL,
            f"{watcher['watch_count']} watch(es) are registered but none executed "
            f"in the last {stale_after:g} s: {when}.",
            evidence={
                "watch_count": watcher["watch_count"],
                "last_execution": watcher["last_execution"],
                "stale_seconds": stale_after,
            },
            remedy="See the other findings for the cause; if there is none, restart "
            "Watcher. Raise WATCHER_STALE_SECONDS if every watch runs less often.",
        )
        return True

    # -- starting that does not end ---------------------------------------------

    def _stuck_starting(self) -> None:
        nodes = self.report_["watcher"]["nodes"] or []
        starting = [n["node_id"] for n in nodes if n["watcher_state"] == "starting"]
        now = time.monotonic()
        with _starting_lock:
            for node_id in list(_starting_since):
                if node_id not in starting:
                    del _starting_since[node_id]
            seen = {n: now - _starting_since.setdefault(n, now) for n in starting}
        if not starting:
            return

        causes = [
            f"{name} is {status}"
            for name, status in self.health.items()
            if status == "red"
        ]
        if not self.present.get(WATCHES, [True]):
            causes.append(".watches is missing")
        if self.stale_copies:
            causes.append("a stale .watches copy is dangling")
        longest = max(seen.values())
        stuck = bool(causes) or longest >= STARTING_GRACE_SECONDS
        why = (
            "because " + "; ".join(causes)
            if causes
            else f"for at least {int(longest)} s as seen by this service"
        )
        self.add(
            "watcher_stuck_starting",
            CRITICAL if stuck else WARNING,
            (
                f"Watcher is stuck in 'starting' on {len(starting)} node(s) {why}; "
                "no watch executes there."
                if stuck
                else f"Watcher is 'starting' on {len(starting)} node(s); it counts "
                f"as stuck after {STARTING_GRACE_SECONDS:g} s."
            ),
            nodes=starting,
            evidence={"seen_starting_seconds": {k: int(v) for k, v in seen.items()}},
            remedy="Fix the cause above (Watcher waits for its indices' shards), "
            "then restart Watcher, or POST /api/v1/health/watcher/remediate.",
        )


def find_stale_copies(dangling: list[dict], metadata: dict[str, dict]):
    """Split dangling ``.watches*`` entries into stale copies and orphans.

    A stale copy has the name of an index in the cluster metadata but another
    uuid: the case this service exists for, and the only kind the remedy
    deletes. An orphan's name is not in the metadata, so it may be the only
    copy of the watches left; it is reported, never deleted.
    """
    known_uuids = {meta["uuid"] for meta in metadata.values() if meta["uuid"]}
    stale, orphans = [], []
    for entry in dangling:
        name = str(entry.get("index_name", ""))
        uuid = str(entry.get("index_uuid", ""))
        if not name.startswith(WATCHES) or not uuid:
            continue
        current = metadata.get(name)
        record = {
            "index_name": name,
            "index_uuid": uuid,
            "node_ids": sorted(entry.get("node_ids") or []),
            "creation_date_millis": entry.get("creation_date_millis"),
        }
        if current is None:
            orphans.append(record)
        elif current["uuid"] and uuid != current["uuid"] and uuid not in known_uuids:
            stale.append({**record, "current_uuid": current["uuid"]})
    return stale, orphans


def _is_license_error(response) -> bool:
    error = response.body.get("error") if isinstance(response.body, dict) else None
    if not isinstance(error, dict) or error.get("type") != "security_exception":
        return False
    return "license.expired.feature" in error or "license" in str(
        error.get("reason", "")
    )


def _empty_report() -> dict:
    return {
        "status": "unknown",
        "elasticsearch": {"version": None, "cluster_name": None},
        "watcher": {
            "state": "unknown",
            "manually_stopped": None,
            "watch_count": None,
            "last_execution": None,
            "nodes": [],
        },
        "findings": [],
        "checked_at": None,
    }


def _finish(report: dict) -> dict:
    report["findings"].sort(key=lambda f: _SEVERITY_ORDER.get(f["severity"], 3))
    report["status"] = status_of(report["findings"])
    report["checked_at"] = now_iso()
    return report
