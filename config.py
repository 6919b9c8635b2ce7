"""Settings, read from the environment."""
import os

BASE_DIR = os.path.abspath(os.path.dirname(__file__))


def database_url(url):
    """Map a plain ``postgresql://`` URL to the psycopg2 driver.

    SQLAlchemy 2.1 picks psycopg 3 for a bare ``postgresql://``; we ship
    psycopg2-binary, so users can keep writing the usual URL.
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = database_url(
        os.environ.get("DATABASE_URL")
        or "sqlite:///" + os.path.join(BASE_DIR, "instance", "containerscan.db")
    )
    # pool_pre_ping: a connection that died while PostgreSQL was away is
    # replaced on checkout, so the same workers serve again once it is back.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # Connect, statement and pool-checkout timeouts (PostgreSQL), so a stuck
    # or unreachable database answers 503 instead of hanging a worker.
    DB_CONNECT_TIMEOUT = _int("DB_CONNECT_TIMEOUT", 5)
    DB_STATEMENT_TIMEOUT_MS = _int("DB_STATEMENT_TIMEOUT_MS", 30000)
    DB_POOL_TIMEOUT = _int("DB_POOL_TIMEOUT", 10)

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    # Redis unreachable or silent: give up within this many seconds, then the
    # limiter serves from a per-process in-memory fallback (and logs it).
    REDIS_TIMEOUT_SECONDS = float(os.environ.get("REDIS_TIMEOUT_SECONDS") or 1)
    RATELIMIT_STORAGE_OPTIONS = (
        {"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}
        if RATELIMIT_STORAGE_URI.startswith(("redis://", "rediss://")) else {})
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "containerscan")
    AGENT_RATE_LIMIT = os.environ.get("AGENT_RATE_LIMIT", "30 per minute")
    USER_RATE_LIMIT = os.environ.get("USER_RATE_LIMIT", "60 per minute")
    AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", "10 per minute")

    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 50 * 1024 * 1024)
    # The same limits gunicorn applies by default (limit_request_field_size,
    # limit_request_line), answered by the app as JSON under any server.
    MAX_HEADER_BYTES = _int("MAX_HEADER_BYTES", 8190)
    MAX_QUERY_STRING_BYTES = _int("MAX_QUERY_STRING_BYTES", 4096)
    MAX_IMAGES_PER_REQUEST = _int("MAX_IMAGES_PER_REQUEST", 1000)
    TOKEN_TTL_SECONDS = _int("TOKEN_TTL_SECONDS", 86400)
    # Number of proxies in front of the app that set X-Forwarded-For
    # (1 behind one nginx); 0 trusts no forwarded header.
    PROXY_FIX_X_FOR = _int("PROXY_FIX_X_FOR", 0)
    # Comma-separated origins allowed to call the API from a browser
    # ("https://ui.example.com"); empty sends no CORS headers at all.
    CORS_ORIGINS = os.environ.get("CORS_ORIGINS", "")


class TestConfig(Config):
    TESTING = True
    SECRET_KEY = "test-secret-key"
    SQLALCHEMY_DATABASE_URI = database_url(
        os.environ.get("TEST_DATABASE_URL") or "sqlite://"
    )
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_STORAGE_OPTIONS = {}
    RATELIMIT_ENABLED = True
    AGENT_RATE_LIMIT = "1000 per minute"
    USER_RATE_LIMIT = "1000 per minute"
    AUTH_RATE_LIMIT = "1000 per minute"
