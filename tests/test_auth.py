"""API keys, bearer tokens, the token endpoint."""
import base64
from datetime import timedelta

from conftest import bearer, submit
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, Token, utcnow

BODY = {"hostname": "h", "images": []}


def basic(username, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def test_agent_key_missing_unknown_and_forbidden(client, org_a, factory):
    r = client.post("/api/agent/container-scan", json=BODY)
    assert r.status_code == 401 and "X-API-Key" in r.get_json()["message"]
    assert submit(client, "csk_not-a-key", BODY).status_code == 401
    no_perm = factory.key(org_a["org"], permissions="")
    r = submit(client, no_perm, BODY)
    assert r.status_code == 403
    assert r.get_json() == {"error": "forbidden", "message": "This API key lacks the 'agent' permission."}
    assert submit(client, org_a["key"], BODY).status_code == 200


def test_revoked_key_is_401(client, org_a):
    db.session.execute(ApiKey.__table__.update().values(revoked_at=utcnow()))
    db.session.commit()
    assert submit(client, org_a["key"], BODY).status_code == 401


def test_bearer_token_is_not_an_agent_key(client, org_a):
    assert submit(client, org_a["token"], BODY).status_code == 401
    r = client.post("/api/agent/container-scan", json=BODY, headers=bearer(org_a["key"]))
    assert r.status_code == 401


def test_token_endpoint_issues_working_token(client, org_a):
    r = client.post("/api/auth/token", headers=basic("alice", "secret-pass"))
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"token", "expires_at"} and body["expires_at"].endswith("Z")
    assert client.get("/api/containers", headers=bearer(body["token"])).status_code == 200
    stored = db.session.scalars(select(Token.token_hash)).all()
    assert body["token"] not in stored and len(stored) == 2


def test_token_endpoint_rejects_bad_credentials(client, org_a):
    for headers in (basic("alice", "wrong"), basic("nobody", "secret-pass"), {},
                    {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}):
        r = client.post("/api/auth/token", headers=headers)
        assert r.status_code == 401, headers
        assert r.get_json()["error"] == "unauthorized"


def test_revoke_token(client, org_a):
    token = org_a["token"]
    assert client.delete("/api/auth/token", headers=bearer(token)).status_code == 204
    r = client.get("/api/containers", headers=bearer(token))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.delete("/api/auth/token", headers=bearer(token)).status_code == 401


def test_expired_token_is_401(client, org_a):
    db.session.execute(Token.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert client.get("/api/containers", headers=bearer(org_a["token"])).status_code == 401


def test_token_ttl_setting(org_a, app):
    token = db.session.scalar(select(Token))
    lifetime = token.expires_at.replace(tzinfo=None) - token.created_at.replace(tzinfo=None)
    assert abs(lifetime.total_seconds() - app.config["TOKEN_TTL_SECONDS"]) < 5


def test_malformed_authorization_headers(client, org_a):
    for value in ("Bearer", "Bearer ", "Token abc", "bearer " + org_a["token"] + "x", "Basic abc"):
        r = client.get("/api/containers", headers={"Authorization": value})
        assert r.status_code == 401, value
        assert r.get_json()["error"] == "unauthorized"


def test_secrets_stored_only_as_hashes(org_a):
    key_hashes = db.session.scalars(select(ApiKey.key_hash)).all()
    token_hashes = db.session.scalars(select(Token.token_hash)).all()
    import hashlib
    assert hashlib.sha256(org_a["key"].encode()).hexdigest() in key_hashes
    assert hashlib.sha256(org_a["token"].encode()).hexdigest() in token_hashes
    assert org_a["key"] not in key_hashes and org_a["token"] not in token_hashes
