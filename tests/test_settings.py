"""The settings object: defaults, parsing, and refusals that name the variable."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError


def test_defaults_match_the_readme_table():
    settings = Settings.from_env({})

    assert str(settings.model_dir) == "var/models"
    assert settings.max_predict_bytes == 64 * 2**20
    assert settings.max_train_bytes == 2**30
    assert settings.blas_threads == 1
    assert settings.log_level == "INFO"
    assert settings.elasticsearch_timeout == 2.0
    assert settings.watcher_cache_seconds == 10.0
    assert settings.watcher_stale_seconds == 3600.0
    assert settings.admin_token == ""


def test_admin_token_from_a_crlf_env_file_still_matches():
    assert Settings.from_env({"ADMIN_TOKEN": "s3cret\r"}).admin_token == "s3cret"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of critical, debug, error"),
        ({"BLAS_THREADS": "0"}, "BLAS_THREADS must be at least 1"),
        ({"MAX_PREDICT_BYTES": "lots"}, "MAX_PREDICT_BYTES must be an integer"),
        ({"TRACING": "maybe"}, "TRACING must be one of on/off"),
        ({"LIGHTSTEP_COLLECTOR_ENCRYPTION": "ssl"}, "must be one of none, tls"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_secrets_include_the_password_in_the_elasticsearch_url():
    settings = Settings.from_env(
        {
            "ADMIN_TOKEN": "a",
            "ELASTICSEARCH_URL": "https://watcher:p%40ss@es:9200",
            "ELASTICSEARCH_API_KEY": "k",
        }
    )

    assert sorted(settings.secrets()) == ["a", "k", "p@ss"]
