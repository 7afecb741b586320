"""One settings object, read from the environment once at start-up.

Every variable is listed, with its default, in the README's configuration table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

MIB = 1024 * 1024


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _env_str(env, name, default):
    value = env.get(name)
    return default if value is None or value == "" else value


def _env_int(env, name, default, minimum=None):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}.")
    return value


def _env_float(env, name, default, minimum=None):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}.")
    return value


def _env_bool(env, name, default):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be one of on/off, true/false, 1/0; got {raw!r}.")


def _env_choice(env, name, default, choices):
    value = _env_str(env, name, default).strip().lower()
    if value not in choices:
        accepted = ", ".join(sorted(choices))
        raise SettingsError(f"{name} must be one of {accepted}; got {value!r}.")
    return value


@dataclass(frozen=True)
class Settings:
    model_dir: Path = Path("var/models")
    admin_token: str = field(default="", repr=False)
    max_predict_bytes: int = 64 * MIB
    max_train_bytes: int = 1024 * MIB
    log_level: str = "INFO"
    log_format: str = "json"
    blas_threads: int = 1

    tracing: bool = True
    tracer: str = "lightstep"
    lightstep_access_token: str = field(default="", repr=False)
    lightstep_collector_host: str = "ingest.lightstep.com"
    lightstep_collector_port: int = 443
    lightstep_collector_encryption: str = "tls"
    lightstep_component_name: str = "logreg-service"
    lightstep_flush_seconds: float = 2.5
    otlp_endpoint: str = "https://ingest.lightstep.com:443/traces/otlp/v0.9"

    elasticsearch_url: str = field(default="", repr=False)
    elasticsearch_api_key: str = field(default="", repr=False)
    elasticsearch_ca_file: str = ""
    elasticsearch_verify_certs: bool = True
    elasticsearch_timeout: float = 2.0
    watcher_cache_seconds: float = 10.0
    watcher_stale_seconds: float = 3600.0

    @classmethod
    def from_env(cls, env=None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            model_dir=Path(_env_str(env, "MODEL_DIR", "var/models")),
            # Stripped: an env file saved with CRLF endings must still match.
            admin_token=_env_str(env, "ADMIN_TOKEN", "").strip(),
            max_predict_bytes=_env_int(env, "MAX_PREDICT_BYTES", 64 * MIB, 1),
            max_train_bytes=_env_int(env, "MAX_TRAIN_BYTES", 1024 * MIB, 1),
            log_level=_env_choice(
                env,
                "LOG_LEVEL",
                "info",
                {"debug", "info", "warning", "error", "critical"},
            ).upper(),
            log_format=_env_choice(env, "LOG_FORMAT", "json", {"json", "text"}),
            blas_threads=_env_int(env, "BLAS_THREADS", 1, 1),
            tracing=_env_bool(env, "TRACING", True),
            tracer=_env_choice(env, "TRACER", "lightstep", {"lightstep", "otlp"}),
            lightstep_access_token=_env_str(env, "LIGHTSTEP_ACCESS_TOKEN", ""),
            lightstep_collector_host=_env_str(
                env, "LIGHTSTEP_COLLECTOR_HOST", "ingest.lightstep.com"
            ),
            lightstep_collector_port=_env_int(env, "LIGHTSTEP_COLLECTOR_PORT", 443, 1),
            lightstep_collector_encryption=_env_choice(
                env, "LIGHTSTEP_COLLECTOR_ENCRYPTION", "tls", {"tls", "none"}
            ),
            lightstep_component_name=_env_str(
                env, "LIGHTSTEP_COMPONENT_NAME", "logreg-service"
            ),
            lightstep_flush_seconds=_env_float(
                env, "LIGHTSTEP_FLUSH_SECONDS", 2.5, 0.05
            ),
            otlp_endpoint=_env_str(
                env,
                "OTLP_ENDPOINT",
                "https://ingest.lightstep.com:443/traces/otlp/v0.9",
            ),
            elasticsearch_url=_env_str(env, "ELASTICSEARCH_URL", ""),
            elasticsearch_api_key=_env_str(env, "ELASTICSEARCH_API_KEY", ""),
            elasticsearch_ca_file=_env_str(env, "ELASTICSEARCH_CA_FILE", ""),
            elasticsearch_verify_certs=_env_bool(
                env, "ELASTICSEARCH_VERIFY_CERTS", True
            ),
            elasticsearch_timeout=_env_float(env, "ELASTICSEARCH_TIMEOUT", 2.0, 0.001),
            watcher_cache_seconds=_env_float(env, "WATCHER_CACHE_SECONDS", 10.0, 0.0),
            watcher_stale_seconds=_env_float(env, "WATCHER_STALE_SECONDS", 3600.0, 1.0),
        )

    def secrets(self) -> list[str]:
        """Every configured secret, so log filters and tests can look for them."""
        found = [
            self.admin_token,
            self.lightstep_access_token,
            self.elasticsearch_api_key,
        ]
        password = _url_password(self.elasticsearch_url)
        if password:
            found.append(password)
        return [secret for secret in found if secret]


def _url_password(url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        return ""
    return unquote(password) if password else ""
