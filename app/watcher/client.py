"""Version-aware HTTP calls to one Elasticsearch cluster, 6.8 to 9.x.

Why the transport and not ``Elasticsearch.perform_request``: the 9.x client
sends ``Accept: application/vnd.elasticsearch+json; compatible-with=9`` on
every call, which 7.x and 8.x servers refuse with a 400
``media_type_header_exception``, and it raises ``UnsupportedProductError`` on
any 2xx answer without ``X-Elastic-Product: Elasticsearch``, a header servers
only send from 7.14 on. So the ``Elasticsearch`` object is built only to turn
the URL, CA file and verification settings into a configured transport, and
every call goes through ``client.transport.perform_request`` with plain
``application/json`` headers, which every server from 6.8 to 9.x accepts and
answers in its own current format. The product check is done here instead,
once, on ``GET /``: the header where the server is new enough to send it, the
tagline where it is not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import elastic_transport
from elasticsearch import Elasticsearch

from app.observability.metrics import ElasticsearchTimer
from app.tracing import child_span

log = logging.getLogger(__name__)

_JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}
_TAGLINE = "You Know, for Search"

# The oldest release whose REST paths and answers this module knows.
MINIMUM_VERSION = (6, 8)
# The dangling indices API arrived in 7.9.
DANGLING_API_VERSION = (7, 9)
# Hidden indices, and the expand_wildcards value that reaches them, arrived in 7.7.
HIDDEN_INDICES_VERSION = (7, 7)
# From 7.14 every authenticated answer carries X-Elastic-Product.
PRODUCT_HEADER_VERSION = (7, 14)


class Unreachable(Exception):
    """No HTTP answer came back: refused, reset, DNS, TLS, or past the timeout."""

    def __init__(self, message: str, timed_out: bool = False):
        super().__init__(message)
        self.timed_out = timed_out


class OutOfTime(Exception):
    """The report's time budget is spent; the call was not made."""


class NotElasticsearch(Exception):
    """The server answered, but not as a supported Elasticsearch does."""


@dataclass(frozen=True)
class Response:
    status: int
    body: object
    headers: dict

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_type(self) -> str:
        """``error.type`` of an Elasticsearch error body, or ``""``."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            return str(error.get("type", ""))
        return ""

    def error_reason(self) -> str:
        """``error.reason`` (or the plain string ``error`` of old answers)."""
        if not isinstance(self.body, dict):
            return str(self.body)[:200] if self.body else ""
        error = self.body.get("error")
        if isinstance(error, dict):
            return str(error.get("reason", ""))
        return str(error or "")[:200]


@dataclass(frozen=True)
class ClusterInfo:
    version: tuple[int, int, int]
    number: str
    cluster_name: str

    @property
    def major(self) -> int:
        return self.version[0]


def parse_version(number: str) -> tuple[int, int, int]:
    """``"8.15.3"`` or ``"9.0.0-SNAPSHOT"`` as ``(8, 15, 3)``."""
    parts = []
    for piece in number.split("-", 1)[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


class ClusterClient:
    """Every call bounded by ``timeout`` and by the caller's overall deadline."""

    def __init__(self, settings):
        self._timeout = settings.elasticsearch_timeout
        self._auth = {}
        if settings.elasticsearch_api_key:
            # The client keeps api_key in its own headers, which the bare
            # transport never sees, so it travels with each call instead.
            self._auth["authorization"] = f"ApiKey {settings.elasticsearch_api_key}"

        options = {
            "request_timeout": self._timeout,
            "max_retries": 0,
            "retry_on_timeout": False,
            "meta_header": False,
            "verify_certs": settings.elasticsearch_verify_certs,
        }
        if settings.elasticsearch_ca_file:
            options["ca_certs"] = settings.elasticsearch_ca_file
        if not settings.elasticsearch_verify_certs:
            options["ssl_show_warn"] = False
        try:
            self._client = Elasticsearch(settings.elasticsearch_url, **options)
        except ValueError:
            # The message would quote the URL, password included.
            raise ValueError(
                "ELASTICSEARCH_URL must look like https://host:9200 or "
                "https://user:password@host:9200 (scheme, host and port)."
            ) from None
        self.deadline: float | None = None
        self.info: ClusterInfo | None = None

    def close(self) -> None:
        self._client.transport.close()

    # -- the one place a request leaves the process ---------------------------

    def request(self, method, path, params=None, body=None) -> Response:
        """One HTTP call; any status comes back, only no-answer raises."""
        timeout = self._timeout
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left < 0.05:
                raise OutOfTime(f"{method} {path}")
            timeout = min(timeout, left)

        target = path + ("?" + urlencode(params) if params else "")
        tags = {"http.method": method, "http.url": path, "db.type": "elasticsearch"}
        with (
            child_span("elasticsearch.request", tags) as span,
            ElasticsearchTimer(method) as timer,
        ):
            try:
                answer = self._client.transport.perform_request(
                    method,
                    target,
                    body=body,
                    headers={**_JSON_HEADERS, **self._auth},
                    request_timeout=timeout,
                )
            except elastic_transport.ConnectionTimeout:
                span.set_tag("error", True)
                raise Unreachable(
                    f"no answer within {timeout:g} s", timed_out=True
                ) from None
            except elastic_transport.ConnectionError as error:
                span.set_tag("error", True)
                raise Unreachable(_connection_reason(error)) from None
            except elastic_transport.SerializationError:
                span.set_tag("error", True)
                raise NotElasticsearch(
                    f"{method} {path} answered a body that is not valid JSON"
                ) from None
            except elastic_transport.TransportError as error:
                span.set_tag("error", True)
                raise Unreachable(type(error).__name__) from None

            span.set_tag("http.status_code", answer.meta.status)
            timer.status = answer.meta.status
            if answer.meta.status >= 500:
                span.set_tag("error", True)

        headers = {name.lower(): value for name, value in answer.meta.headers.items()}
        return Response(answer.meta.status, _plain(answer.body), headers)

    # -- learning who is on the other end -------------------------------------

    def discover(self) -> Response:
        """``GET /``; on success ``self.info`` is filled in and verified."""
        response = self.request("GET", "/")
        if not response.ok:
            return response

        body = response.body if isinstance(response.body, dict) else {}
        number = str((body.get("version") or {}).get("number", ""))
        if not number:
            raise NotElasticsearch("GET / answered without version.number")
        version = parse_version(number)

        product = response.headers.get("x-elastic-product")
        if version >= PRODUCT_HEADER_VERSION:
            if product != "Elasticsearch":
                raise NotElasticsearch(
                    f"server claims version {number} but sends no "
                    "'X-Elastic-Product: Elasticsearch' header"
                )
        elif body.get("tagline") != _TAGLINE:
            raise NotElasticsearch("GET / answered without the Elasticsearch tagline")

        self.info = ClusterInfo(version, number, str(body.get("cluster_name", "")))
        return response

    # -- version-aware paths ---------------------------------------------------

    def _require_info(self) -> ClusterInfo:
        if self.info is None:
            raise RuntimeError("call discover() before version-aware calls")
        return self.info

    def watcher_path(self, action: str) -> str:
        """``stats``, ``_start``, ... under ``_xpack/watcher`` (6.x) or ``_watcher``."""
        prefix = "/_xpack/watcher" if self._require_info().major < 7 else "/_watcher"
        return f"{prefix}/{action}"

    @property
    def has_dangling_api(self) -> bool:
        return self._require_info().version >= DANGLING_API_VERSION

    def hidden_wildcards(self) -> str:
        """An ``expand_wildcards`` value that also reaches hidden indices."""
        if self._require_info().version >= HIDDEN_INDICES_VERSION:
            return "open,hidden"
        return "open"

    # -- the calls the checks and the remedy make ------------------------------

    def watcher_stats(self) -> Response:
        return self.request("GET", self.watcher_path("stats"))

    def index_metadata(self, expression: str) -> Response:
        """The metadata of indices matching ``expression``, uuids included."""
        params = {
            "expand_wildcards": "all",
            "filter_path": "metadata.indices.*.settings.index.uuid,"
            "metadata.indices.*.aliases,metadata.indices.*.state",
        }
        return self.request("GET", f"/_cluster/state/metadata/{expression}", params)

    def index_health(self, names: list[str]) -> Response:
        # A missing index makes health wait for it for `timeout`, then answer
        # 408; callers pass only names seen in the metadata, and the short
        # timeout bounds the race where one is deleted in between.
        wait = max(0.1, min(1.0, self._timeout / 2))
        params = {"level": "indices", "timeout": f"{int(wait * 1000)}ms"}
        return self.request("GET", "/_cluster/health/" + ",".join(names), params)

    def dangling_indices(self) -> Response:
        return self.request("GET", "/_dangling")

    def delete_dangling(self, uuid: str) -> Response:
        return self.request(
            "DELETE", f"/_dangling/{uuid}", {"accept_data_loss": "true"}
        )

    def last_execution(self) -> Response:
        """The newest ``result.execution_time`` in the watch history."""
        params = {
            "ignore_unavailable": "true",
            "allow_no_indices": "true",
            "expand_wildcards": self.hidden_wildcards(),
        }
        body = {
            "size": 0,
            "aggs": {"last_execution": {"max": {"field": "result.execution_time"}}},
        }
        return self.request("POST", "/.watcher-history-*/_search", params, body)

    def node_data_paths(self) -> Response:
        params = {"filter_path": "nodes.*.name,nodes.*.host,nodes.*.fs.data.path"}
        return self.request("GET", "/_nodes/stats/fs", params)

    def watcher_action(self, action: str) -> Response:
        return self.request("POST", self.watcher_path(action))


def _plain(body):
    """The transport's response wrappers as plain dicts and lists."""
    if hasattr(body, "body"):
        body = body.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return body


def _connection_reason(error) -> str:
    # The transport's message can quote the node, which is safe (no userinfo),
    # but keep it short and free of stack details.
    text = str(getattr(error, "message", "") or error)
    for marker in ("Connection refused", "Name or service not known", "SSL"):
        if marker in text:
            return marker.lower()
    return "connection failed"
