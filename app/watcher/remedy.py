"""The fix for a stale ``.watches`` copy: delete it, restart Watcher, look again.

Only a dangling entry whose name starts with ``.watches``, whose name is in the
cluster metadata, and whose uuid is not any uuid in that metadata is deleted.
The current uuids come from ``GET /_cluster/state/metadata/.watches*``: the
cluster metadata is exactly what the node's log line compares against, it
answers for closed and hidden indices alike, and unlike ``GET /<index>/_settings``
it does not fail with 404 when an index is missing or warn about system-index
access. The metadata is read again right before deleting, so a copy imported
in between is never touched.
"""

from __future__ import annotations

import logging
import time

from app.watcher.checks import (
    WATCHES,
    build_report,
    find_stale_copies,
    forget_starting_nodes,
)
from app.watcher.client import ClusterClient, NotElasticsearch, OutOfTime, Unreachable

log = logging.getLogger(__name__)

# After a restart Watcher passes through `starting`; look again this many times,
# this far apart, before reporting what is there.
AFTER_TRIES = 5
AFTER_PAUSE_SECONDS = 0.5

_RESTART_CODES = {
    "dangling_watches_index",
    "watcher_stopped",
    "watcher_state_mixed",
    "watcher_stuck_starting",
}


# What a cluster call raises when the cluster stops answering mid-remedy.
_CLUSTER_ERRORS = (Unreachable, NotElasticsearch, OutOfTime)


class RemedyUnavailable(Exception):
    """The cluster cannot be read, so nothing can be planned safely."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def remediate(settings, dry_run: bool) -> dict:
    """Plan (and unless ``dry_run``, perform) the fix; return before and after."""
    if not settings.elasticsearch_url:
        raise RemedyUnavailable(
            "elasticsearch_not_configured",
            "No Elasticsearch cluster is configured; set ELASTICSEARCH_URL first.",
        )

    try:
        client = ClusterClient(settings)
    except ValueError as error:
        raise RemedyUnavailable(
            "elasticsearch_unavailable",
            f"Nothing was changed: ELASTICSEARCH_URL cannot be used ({error}).",
        ) from None
    try:
        before = build_report(settings, client)
        if before["status"] == "unknown":
            first = before["findings"][0] if before["findings"] else {}
            raise RemedyUnavailable(
                "elasticsearch_unavailable",
                "Nothing was changed because the cluster could not be read: "
                f"{first.get('message', 'unknown reason')}",
            )

        try:
            actions, manual_steps = _plan(client, before)
        except _CLUSTER_ERRORS as error:
            raise RemedyUnavailable(
                "elasticsearch_unavailable",
                f"Nothing was changed: the cluster stopped answering ({error}).",
            ) from None
        if dry_run:
            return _result(True, actions, manual_steps, before, None)

        for action in actions:
            try:
                _perform(client, action)
            except _CLUSTER_ERRORS as error:
                # Keep the record of what was already done; this one failed.
                action["result"] = "failed"
                action["error"] = f"the cluster stopped answering: {error}"
        forget_starting_nodes()
        after = _look_again(settings, client, actions)
        return _result(False, actions, manual_steps, before, after)
    finally:
        client.close()


def _plan(client: ClusterClient, before: dict):
    actions, manual_steps = [], []
    codes = {f["code"] for f in before["findings"]}

    if client.has_dangling_api:
        for copy in _stale_copies(client):
            actions.append(
                {
                    "action": "delete_dangling_index",
                    "index_name": copy["index_name"],
                    "index_uuid": copy["index_uuid"],
                    "current_uuid": copy["current_uuid"],
                    "node_ids": copy["node_ids"],
                    "request": f"DELETE /_dangling/{copy['index_uuid']}"
                    "?accept_data_loss=true",
                    "result": "planned",
                }
            )
    else:
        manual_steps.extend(_manual_steps(client))

    if actions or codes & _RESTART_CODES:
        if client.info.major < 7:
            requests = [f"POST {client.watcher_path('_restart')}"]
        else:
            requests = [
                f"POST {client.watcher_path('_stop')}",
                f"POST {client.watcher_path('_start')}",
            ]
        actions.append(
            {"action": "restart_watcher", "requests": requests, "result": "planned"}
        )
    return actions, manual_steps


def _stale_copies(client: ClusterClient) -> list[dict]:
    metadata = _metadata(client)
    listed = client.dangling_indices()
    body = listed.body if isinstance(listed.body, dict) else {}
    if not listed.ok and "dangling_indices" not in body:
        raise RemedyUnavailable(
            "elasticsearch_unavailable",
            f"GET /_dangling answered HTTP {listed.status}; nothing was changed.",
        )
    stale, _ = find_stale_copies(body.get("dangling_indices") or [], metadata)
    return stale


def _metadata(client: ClusterClient) -> dict[str, dict]:
    response = client.index_metadata(f"{WATCHES}*")
    if not response.ok or not isinstance(response.body, dict):
        raise RemedyUnavailable(
            "elasticsearch_unavailable",
            f"GET /_cluster/state/metadata answered HTTP {response.status}; "
            "nothing was changed.",
        )
    indices = ((response.body.get("metadata") or {}).get("indices")) or {}
    return {
        name: {"uuid": ((meta.get("settings") or {}).get("index") or {}).get("uuid")}
        for name, meta in indices.items()
    }


def _manual_steps(client: ClusterClient) -> list[dict]:
    # Limitation: before 7.9 the stale copy's uuid and node are only in the
    # nodes' logs, so the service can say where to look but not what to delete.
    metadata = _metadata(client)
    current = {name: meta["uuid"] for name, meta in metadata.items()}
    nodes = {}
    try:
        response = client.node_data_paths()
        if response.ok and isinstance(response.body, dict):
            nodes = response.body.get("nodes") or {}
    except (Unreachable, NotElasticsearch):
        pass

    steps = []
    for node_id, node in sorted(nodes.items()):
        paths = [entry.get("path") for entry in (node.get("fs") or {}).get("data", [])]
        steps.append(
            {
                "node_id": node_id,
                "node_name": node.get("name"),
                "host": node.get("host"),
                "directories": [f"{path}/indices/<stale-uuid>" for path in paths],
                "instruction": "If this node's log says a .watches index 'can not "
                "be imported as a dangling index', stop the node, delete the "
                "directory named by the uuid in that log line (it is not one of "
                "current_uuids), start the node, then restart Watcher.",
                "current_uuids": current,
            }
        )
    if not steps:
        steps.append(
            {
                "instruction": "On each node whose log says a .watches index 'can "
                "not be imported as a dangling index': stop the node, delete "
                "<path.data>/nodes/0/indices/<uuid from the log line> (never a "
                "uuid in current_uuids), start the node, then restart Watcher.",
                "current_uuids": current,
            }
        )
    return steps


def _perform(client: ClusterClient, action: dict) -> None:
    if action["action"] == "delete_dangling_index":
        # Read the metadata again: a copy imported since the plan is no longer
        # dangling, and its uuid must never be deleted.
        fresh = _metadata(client)
        uuids = {meta["uuid"] for meta in fresh.values()}
        if action["index_uuid"] in uuids or action["index_name"] not in fresh:
            action["result"] = "skipped"
            action["reason"] = "the index is now in the cluster metadata, or its "
            action["reason"] += "namesake is gone; nothing was deleted"
            return
        _record(action, client.delete_dangling(action["index_uuid"]))
        log.info("deleted dangling index copy %s", action["index_uuid"])
        return

    if action["action"] == "restart_watcher":
        if client.info.major < 7:
            response = client.watcher_action("_restart")
            if response.status in (400, 404, 405):
                # Some 6.x builds lack _restart; stop and start does the same.
                action["requests"] = [
                    f"POST {client.watcher_path('_stop')}",
                    f"POST {client.watcher_path('_start')}",
                ]
            else:
                _record(action, response)
                return
        stopped = client.watcher_action("_stop")
        if not stopped.ok:
            _record(action, stopped)
            return
        _record(action, client.watcher_action("_start"))


def _record(action: dict, response) -> None:
    if response.ok:
        action["result"] = "done"
    else:
        action["result"] = "failed"
        action["error"] = {
            "http_status": response.status,
            "type": response.error_type(),
            "reason": response.error_reason(),
        }


def _look_again(settings, client, actions) -> dict:
    after = build_report(settings, client)
    if not any(a["action"] == "restart_watcher" for a in actions):
        return after
    for _ in range(AFTER_TRIES - 1):
        states = {n["watcher_state"] for n in after["watcher"]["nodes"]}
        if "starting" not in states and "stopping" not in states:
            break
        time.sleep(AFTER_PAUSE_SECONDS)
        forget_starting_nodes()
        after = build_report(settings, client)
    return after


def _result(dry_run, actions, manual_steps, before, after) -> dict:
    return {
        "dry_run": dry_run,
        "actions": actions,
        "manual_steps": manual_steps,
        "before": before,
        "after": after,
    }
