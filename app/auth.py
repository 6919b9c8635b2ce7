"""Both auth schemes: agent API keys and user bearer tokens (plus Basic for tokens).

Secrets are random, shown once, and stored only as SHA-256 hashes; lookups go
by hash and the match is confirmed with ``hmac.compare_digest``.
"""
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone

from flask import current_app, g, request
from flask_httpauth import HTTPBasicAuth, HTTPTokenAuth
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import Authorization
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import error_response
from .extensions import db
from .models import ApiKey, Token, User

AGENT_HEADERS = ("X-API-Key", "X-Agent-Key")
_CONFLICT = "\x00conflicting-keys"
# Checked against when a username is unknown, so both paths cost the same.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def hash_secret(value):
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def new_secret(prefix):
    return prefix + secrets.token_urlsafe(32)


def agent_key_value():
    """The agent key sent, from either header; a conflict is its own value."""
    values = {request.headers.get(h) for h in AGENT_HEADERS} - {None}
    if len(values) > 1:
        return _CONFLICT
    return values.pop() if values else None


class AgentKeyAuth(HTTPTokenAuth):
    """``X-API-Key``, or ``X-Agent-Key`` as the shipped agents send it."""

    def get_auth(self):
        value = agent_key_value()
        if value is None:
            return None
        auth = Authorization(self.scheme)
        auth.token = value
        return auth

    def authenticate_header(self):
        return 'ApiKey realm="agent"'


agent_auth = AgentKeyAuth(header="X-API-Key")
token_auth = HTTPTokenAuth(scheme="Bearer")
basic_auth = HTTPBasicAuth()


@agent_auth.verify_token
def verify_api_key(value):
    if value == _CONFLICT:
        g.auth_failure = "X-API-Key and X-Agent-Key carry different keys."
        return None
    digest = hash_secret(value)
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, digest):
        return None
    return key


@agent_auth.get_user_roles
def api_key_roles(key):
    return sorted(key.permission_set)


@agent_auth.error_handler
def agent_auth_error(status):
    if status == 403:
        return error_response(403, "This API key lacks the 'agent' permission.")
    message = g.get("auth_failure") or (
        "Invalid API key." if agent_key_value() else "Missing API key: send it in the X-API-Key header.")
    return error_response(401, message)


def issue_token(user):
    """Create a bearer token for ``user``; returns (token, expires_at)."""
    value = new_secret("cst_")
    ttl = current_app.config["TOKEN_TTL_SECONDS"]
    expires = datetime.now(timezone.utc) + timedelta(seconds=ttl)
    db.session.add(Token(user_id=user.id, token_hash=hash_secret(value), expires_at=expires))
    return value, expires


def _aware(value):
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


@token_auth.verify_token
def verify_token(value):
    digest = hash_secret(value)
    # The user in the same query: every authenticated request needs it.
    token = db.session.scalar(
        select(Token).options(joinedload(Token.user)).where(Token.token_hash == digest))
    if (token is None or token.revoked_at is not None
            or _aware(token.expires_at) <= datetime.now(timezone.utc)
            or not hmac.compare_digest(token.token_hash, digest)):
        return None
    g.token = token
    return token.user


@token_auth.error_handler
def token_auth_error(status):
    if request.headers.get("Authorization"):
        message = "Invalid, expired or revoked bearer token."
    else:
        message = "Missing bearer token: send 'Authorization: Bearer <token>'."
    return error_response(status, message, headers={"WWW-Authenticate": 'Bearer realm="api"'})


@basic_auth.verify_password
def verify_password(username, password):
    # No stored name holds a NUL, and PostgreSQL refuses one in a query.
    known = username and "\x00" not in username
    user = db.session.scalar(select(User).where(User.username == username)) if known else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if check_password_hash(user.password_hash, password or ""):
        return user
    return None


@basic_auth.error_handler
def basic_auth_error(status):
    return error_response(status, "Invalid username or password.",
                          headers={"WWW-Authenticate": 'Basic realm="api"'})
