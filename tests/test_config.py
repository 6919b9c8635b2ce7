"""Settings: defaults from CONTRACT.md and the PostgreSQL URL mapping."""
import importlib
import os

import pytest

import config

SETTINGS = ("DATABASE_URL", "RATELIMIT_STORAGE_URI", "AGENT_RATE_LIMIT", "USER_RATE_LIMIT",
            "MAX_CONTENT_LENGTH", "TOKEN_TTL_SECONDS")


@pytest.fixture
def fresh_config(monkeypatch):
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    yield lambda: importlib.reload(config).Config
    importlib.reload(config)


def test_defaults(fresh_config):
    cfg = fresh_config()
    assert cfg.SQLALCHEMY_DATABASE_URI == "sqlite:///" + os.path.join(
        config.BASE_DIR, "instance", "containerscan.db")
    assert cfg.RATELIMIT_STORAGE_URI == "memory://"
    assert cfg.AGENT_RATE_LIMIT == "30 per minute"
    assert cfg.USER_RATE_LIMIT == "60 per minute"
    assert cfg.MAX_CONTENT_LENGTH == 50 * 1024 * 1024
    assert cfg.TOKEN_TTL_SECONDS == 86400
    assert cfg.SECRET_KEY is None or os.environ.get("SECRET_KEY")


def test_environment_overrides(fresh_config, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db:5432/inv")
    monkeypatch.setenv("MAX_CONTENT_LENGTH", "1024")
    monkeypatch.setenv("AGENT_RATE_LIMIT", "5 per second")
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "60")
    cfg = fresh_config()
    assert cfg.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg2://u:p@db:5432/inv"
    assert (cfg.MAX_CONTENT_LENGTH, cfg.AGENT_RATE_LIMIT, cfg.TOKEN_TTL_SECONDS) == (1024, "5 per second", 60)


@pytest.mark.parametrize("url, expected", [
    ("postgresql://h/db", "postgresql+psycopg2://h/db"),
    ("postgres://h/db", "postgresql+psycopg2://h/db"),
    ("postgresql+psycopg2://h/db", "postgresql+psycopg2://h/db"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_postgresql_url_uses_psycopg2(url, expected):
    assert config.database_url(url) == expected
