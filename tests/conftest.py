"""Fixtures: one migrated database per session (SQLite, or PostgreSQL when
TEST_DATABASE_URL names one), emptied before every test; small factories."""
import os
import tempfile

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.auth import hash_secret, issue_token, new_secret
from app.extensions import db, limiter
from app.models import ApiKey, Organization, User
from config import TestConfig, database_url

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TRIVY_DIR = os.path.join(FIXTURES, "trivy")

_TMP = tempfile.mkdtemp(prefix="containerscan-test-")
TEST_DB_URL = database_url(os.environ.get("TEST_DATABASE_URL")
                           or "sqlite:///" + os.path.join(_TMP, "test.db"))
IS_POSTGRES = TEST_DB_URL.startswith("postgresql")


class _Config(TestConfig):
    SQLALCHEMY_DATABASE_URI = TEST_DB_URL


def make_app(**overrides):
    config = type("Config", (_Config,), overrides)
    return create_app(config)


def _reset_schema(app):
    with app.app_context():
        if IS_POSTGRES:
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.engine.dispose()


def empty_tables():
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if IS_POSTGRES:
        db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            db.session.execute(text(f"DELETE FROM {table}"))
    db.session.commit()


@pytest.fixture(scope="session")
def _schema():
    _reset_schema(make_app())
    return TEST_DB_URL


@pytest.fixture
def app(_schema):
    app = make_app()
    with app.app_context():
        empty_tables()
        limiter.reset()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class Factory:
    """Organizations, users, keys and tokens; secrets are returned in clear."""

    def org(self, name="acme"):
        org = Organization(name=name)
        db.session.add(org)
        db.session.commit()
        return org

    def user(self, org, username=None, admin=False, password="secret-pass"):
        from werkzeug.security import generate_password_hash
        user = User(username=username or f"user-{org.name}-{'admin' if admin else 'x'}",
                    password_hash=generate_password_hash(password, method="pbkdf2:sha256:1000"),
                    organization_id=org.id, is_admin=admin)
        db.session.add(user)
        db.session.commit()
        return user

    def key(self, org, permissions="agent", name="agent"):
        value = new_secret("csk_")
        db.session.add(ApiKey(organization_id=org.id, name=name, key_hash=hash_secret(value),
                              permissions=permissions))
        db.session.commit()
        return value

    def token(self, user):
        value, _ = issue_token(user)
        db.session.commit()
        return value


@pytest.fixture
def factory(app):
    return Factory()


@pytest.fixture
def org_a(factory):
    """Organization A with an agent key, a user and their token."""
    org = factory.org("org-a")
    user = factory.user(org, "alice")
    return {"org": org, "key": factory.key(org), "user": user, "token": factory.token(user)}


@pytest.fixture
def org_b(factory):
    org = factory.org("org-b")
    user = factory.user(org, "bob")
    return {"org": org, "key": factory.key(org), "user": user, "token": factory.token(user)}


def load_sample(name):
    import json
    with open(os.path.join(TRIVY_DIR, name), encoding="utf-8") as fh:
        return json.load(fh)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def submit(client, key, body, header="X-API-Key", **kwargs):
    import orjson
    return client.post("/api/agent/container-scan", data=orjson.dumps(body),
                       headers={header: key, "Content-Type": "application/json"}, **kwargs)
