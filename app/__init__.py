"""Container vulnerability inventory: agents submit Trivy scans, users query them."""
import logging

import orjson
from flask import Flask, request
from flask.json.provider import JSONProvider
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Config

from .extensions import db, limiter, migrate


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson: the listing and detail are mostly serialization."""

    def dumps(self, obj, **kwargs):
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(
            orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS), mimetype="application/json")


def create_app(config_class=Config):
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config_class)
    app.json = OrjsonProvider(app)
    _configure_engine(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=_migrations_dir(), render_as_batch=True)
    # Registered before the limiter's own hook, so it runs after it.
    app.after_request(_retry_after_only_when_retrying)
    limiter.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _sqlite_pragmas(db.engine)

    if app.config["PROXY_FIX_X_FOR"]:
        hops = app.config["PROXY_FIX_X_FOR"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from . import agent, containers, health, openapi, tokens
    from .cli import register_cli
    from .errors import register_error_handlers

    for module in (agent, containers, tokens, health, openapi):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
    register_cli(app)
    app.after_request(_security_headers)
    _configure_cors(app)
    logging.basicConfig(level=logging.INFO)
    return app


def _migrations_dir():
    import os
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def _configure_engine(app):
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if uri.startswith("postgresql"):
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("connect_timeout", app.config["DB_CONNECT_TIMEOUT"])
        connect_args.setdefault(
            "options", f"-c statement_timeout={app.config['DB_STATEMENT_TIMEOUT_MS']}")
        options["connect_args"] = connect_args
        options.setdefault("pool_timeout", app.config.get("DB_POOL_TIMEOUT", 10))
    elif uri.startswith("sqlite"):
        import os
        os.makedirs(app.instance_path, exist_ok=True)
        options.setdefault("connect_args", {}).setdefault("timeout", 30)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _sqlite_pragmas(engine):
    """WAL, a busy timeout and BEGIN IMMEDIATE, so writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _retry_after_only_when_retrying(response):
    """The limiter adds Retry-After to every response; it means something on 429 and 503 only."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def _security_headers(response):
    """Every response: no MIME sniffing, no framing; API responses are never cached."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    return response


_CORS_ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, X-API-Key, X-Agent-Key"
_CORS_EXPOSE_HEADERS = "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"


def _configure_cors(app):
    """CORS only when CORS_ORIGINS lists origins; credentials travel in headers, not cookies."""
    origins = {o.strip().rstrip("/") for o in app.config.get("CORS_ORIGINS", "").split(",") if o.strip()}
    if not origins:
        return

    @app.after_request
    def cors_headers(response):
        response.headers.add("Vary", "Origin")
        origin = request.headers.get("Origin")
        if not origin or ("*" not in origins and origin not in origins):
            return response
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
        response.headers["Access-Control-Expose-Headers"] = _CORS_EXPOSE_HEADERS
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
            response.headers["Access-Control-Allow-Headers"] = _CORS_ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response
