"""Security: tenant isolation over every endpoint and credential, secrets, headers,
request limits, health probes. In-process, fast."""
import hashlib
import logging
from datetime import timedelta

import pytest
from conftest import Factory, bearer, empty_tables, make_app, submit
from sqlalchemy import text

from app.auth import hash_secret, issue_token
from app.extensions import db, limiter
from app.models import Token, utcnow

ALPHA = ("alpha-host.example", "alpha-image")
BRAVO = ("bravo-host.example", "bravo-image")
SUBMITTED = ("submitted-host.example", "submitted-image")


def body(names, tag="1.0"):
    hostname, image = names
    return {"hostname": hostname, "images": [{"image_name": f"{image}:{tag}", "scan_results": {
        "Results": [{"Target": "t", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2024-0001", "PkgName": "openssl", "Severity": "HIGH"}]}]}}]}


@pytest.fixture
def world(app, client, factory):
    """Org A (agent key, key without permission, user), org B (key, user), an admin
    elsewhere, an expired and a revoked token of A's user; one image in A and one in B."""
    a, b, ops = factory.org("org-alpha"), factory.org("org-bravo"), factory.org("org-ops")
    alice, bob = factory.user(a, "alice"), factory.user(b, "bob")
    admin = factory.user(ops, "root", admin=True)
    w = {"org_a": a.id, "org_b": b.id, "key_a": factory.key(a), "key_b": factory.key(b),
         "key_noperm": factory.key(a, permissions="", name="no-perm")}
    w["tokens"] = {"user_a": factory.token(alice), "user_b": factory.token(bob),
                   "admin": factory.token(admin)}
    expired, _ = issue_token(alice)
    revoked, _ = issue_token(alice)
    db.session.commit()
    db.session.execute(Token.__table__.update().where(Token.token_hash == hash_secret(expired))
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.execute(Token.__table__.update().where(Token.token_hash == hash_secret(revoked))
                       .values(revoked_at=utcnow()))
    db.session.commit()
    w["tokens"].update(expired=expired, revoked=revoked)
    assert submit(client, w["key_a"], body(ALPHA)).status_code == 200
    assert submit(client, w["key_b"], body(BRAVO)).status_code == 200
    ids = {item["hostname"]: item["id"] for item in client.get(
        "/api/containers", headers=bearer(w["tokens"]["admin"])).get_json()["items"]}
    w["image_a"], w["image_b"] = ids[ALPHA[0]], ids[BRAVO[0]]
    return w


CREDENTIALS = ["key_a", "key_b", "key_noperm", "user_a", "user_b", "admin",
               "expired", "revoked", "malformed"]


def headers_for(kind, w):
    if kind.startswith("key_"):
        return {"X-API-Key": w[kind], "Content-Type": "application/json"}
    if kind == "malformed":
        return {"Authorization": "Bearer", "X-API-Key": "", "Content-Type": "application/json"}
    return {**bearer(w["tokens"][kind]), "Content-Type": "application/json"}


# what each credential may see; everything else counts as foreign
VISIBLE = {"key_a": {ALPHA}, "key_noperm": {ALPHA}, "user_a": {ALPHA}, "key_b": {BRAVO},
           "user_b": {BRAVO}, "admin": {ALPHA, BRAVO}, "expired": set(), "revoked": set(),
           "malformed": set()}

UNAUTH_BEARER = {"key_a": 401, "key_b": 401, "key_noperm": 401, "expired": 401, "revoked": 401,
                 "malformed": 401}
# endpoint -> (method, path(w), json body or None, {credential: status})
ENDPOINTS = {
    "submit": ("post", lambda w: "/api/agent/container-scan", body(SUBMITTED),
               {"key_a": 200, "key_b": 200, "key_noperm": 403, "user_a": 401, "user_b": 401,
                "admin": 401, "expired": 401, "revoked": 401, "malformed": 401}),
    "list": ("get", lambda w: "/api/containers", None,
             {**UNAUTH_BEARER, "user_a": 200, "user_b": 200, "admin": 200}),
    "list_org_b": ("get", lambda w: f"/api/containers?organization_id={w['org_b']}", None,
                   {**UNAUTH_BEARER, "user_a": 403, "user_b": 200, "admin": 200}),
    "detail_a": ("get", lambda w: f"/api/containers/{w['image_a']}", None,
                 {**UNAUTH_BEARER, "user_a": 200, "user_b": 404, "admin": 200}),
    "detail_b": ("get", lambda w: f"/api/containers/{w['image_b']}", None,
                 {**UNAUTH_BEARER, "user_a": 404, "user_b": 200, "admin": 200}),
    "detail_missing": ("get", lambda w: "/api/containers/999999", None,
                       {**UNAUTH_BEARER, "user_a": 404, "user_b": 404, "admin": 404}),
    "token_new": ("post", lambda w: "/api/auth/token", None, dict.fromkeys(CREDENTIALS, 401)),
    "token_revoke": ("delete", lambda w: "/api/auth/token", None,
                     {**UNAUTH_BEARER, "user_a": 204, "user_b": 204, "admin": 204}),
    "healthz": ("get", lambda w: "/healthz", None, dict.fromkeys(CREDENTIALS, 200)),
    "readyz": ("get", lambda w: "/readyz", None, dict.fromkeys(CREDENTIALS, 200)),
}


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_isolation_matrix(client, world, endpoint, credential):
    method, path, payload, expected = ENDPOINTS[endpoint]
    r = getattr(client, method)(path(world), json=payload, headers=headers_for(credential, world))
    assert r.status_code == expected[credential], r.get_data(as_text=True)
    text_ = r.get_data(as_text=True)
    for names in {ALPHA, BRAVO} - VISIBLE[credential]:
        for name in names:
            assert name not in text_, f"{endpoint} x {credential} leaks {name}"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in r.headers
    if r.status_code != 204:
        assert r.mimetype == "application/json"
    if r.status_code >= 400:
        assert set(r.get_json()) >= {"error", "message"}
    if path(world).startswith("/api/"):
        assert r.headers["Cache-Control"] == "no-store"
    if r.status_code == 401 and endpoint not in ("submit", "token_new"):
        assert r.headers["WWW-Authenticate"].startswith("Bearer")

    if r.status_code == 200 and endpoint.startswith("list"):
        seen = {(i["hostname"], i["image_name"]) for i in r.get_json()["items"]}
        wanted = VISIBLE[credential] if endpoint == "list" else VISIBLE[credential] & {BRAVO}
        assert seen == wanted
    if r.status_code == 200 and endpoint == "submit":
        # stored in the key's organization, and only there
        org = world["org_a"] if credential == "key_a" else world["org_b"]
        rows = db.session.execute(text(
            "SELECT h.organization_id FROM host_images i JOIN hosts h ON h.id = i.host_id "
            "WHERE h.hostname = :h"), {"h": SUBMITTED[0]}).all()
        assert [row[0] for row in rows] == [org]
    if endpoint == "token_revoke" and r.status_code == 204:
        again = client.get("/api/containers", headers=headers_for(credential, world))
        assert again.status_code == 401


def test_malformed_credentials_on_every_endpoint(client, world):
    bad_headers = [{"Authorization": "Bearer"}, {"Authorization": "Bearer  "},
                   {"Authorization": "Token abc"}, {"Authorization": "Basic !!!"},
                   {"Authorization": "Bearer " + "é" * 40}, {"X-API-Key": ""}, {"X-API-Key": " "},
                   {"X-API-Key": world["key_a"] + "x"}, {"X-Agent-Key": "csk_nope"},
                   {"X-API-Key": world["key_a"], "X-Agent-Key": world["key_b"]}]
    for method, path, payload, _ in ENDPOINTS.values():
        url = path(world)
        if not url.startswith("/api/"):
            continue
        for headers in bad_headers:
            r = getattr(client, method)(url, json=payload, headers=headers)
            assert r.status_code == 401, (url, headers, r.status_code)
            assert r.get_json()["error"] == "unauthorized"


# --- secrets -------------------------------------------------------------------------------

def _all_stored_text():
    """Every row of every table, as text."""
    dump = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(text(f"SELECT * FROM {table.name}")):
            dump.append(" ".join(str(v) for v in row))
    return "\n".join(dump)


def _session_via_cli_and_http(app, client, runner):
    """Create everything through the CLI, then use and revoke it over HTTP; returns the secrets."""
    def cli(*args, stdin=None):
        result = runner.invoke(args=list(args), input=stdin)
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    password = "correct horse battery staple"
    cli("orgs", "create", "org-cli")
    cli("users", "create", "carol", "--org", "org-cli", "--password-stdin", stdin=password + "\n")
    key = cli("api-keys", "create", "--org", "org-cli", "--name", "fleet")
    cli_token = cli("tokens", "create", "carol")
    r = client.post("/api/auth/token", auth=("carol", password))
    assert r.status_code == 200
    http_token = r.get_json()["token"]
    assert client.post("/api/auth/token", auth=("carol", password + "-wrong")).status_code == 401
    assert submit(client, key, body(ALPHA)).status_code == 200
    assert submit(client, key + "-wrong", body(ALPHA)).status_code == 401
    assert client.get("/api/containers", headers=bearer(cli_token)).status_code == 200
    assert client.get("/api/containers", headers=bearer(http_token + "x")).status_code == 401
    assert client.delete("/api/auth/token", headers=bearer(http_token)).status_code == 204
    assert client.get("/api/containers", headers=bearer(http_token)).status_code == 401
    return {"key": key, "cli_token": cli_token, "http_token": http_token, "password": password}


def test_secrets_stored_only_as_hashes(app, client, runner):
    secrets = _session_via_cli_and_http(app, client, runner)
    stored = _all_stored_text()
    for name, value in secrets.items():
        assert value not in stored, name
    key_hashes = set(db.session.scalars(text("SELECT key_hash FROM api_keys")))
    token_hashes = set(db.session.scalars(text("SELECT token_hash FROM tokens")))
    assert hashlib.sha256(secrets["key"].encode()).hexdigest() in key_hashes
    assert {hashlib.sha256(secrets[t].encode()).hexdigest() for t in ("cli_token", "http_token")} \
        <= token_hashes
    password_hash = db.session.scalar(text("SELECT password_hash FROM users WHERE username = 'carol'"))
    assert password_hash.split(":")[0] in ("scrypt", "pbkdf2")


def test_secrets_never_in_logs(app, client, runner, caplog):
    caplog.set_level(logging.DEBUG)
    # SQL statements and their parameters too: only hashes may reach them
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        secrets = _session_via_cli_and_http(app, client, runner)
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    assert "INSERT INTO api_keys" in logged  # the capture really saw the whole session
    for name, value in secrets.items():
        assert value not in logged, name


# --- headers, CORS --------------------------------------------------------------------------

def test_security_headers_on_every_kind_of_response(client, org_a):
    responses = [client.get("/healthz"), client.get("/nope"), client.put("/api/containers"),
                 client.get("/api/containers"), client.get("/api/containers", headers=bearer(org_a["token"])),
                 submit(client, org_a["key"], body(ALPHA))]
    for r in responses:
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "Access-Control-Allow-Origin" not in r.headers
    for r in responses[2:]:
        assert r.headers["Cache-Control"] == "no-store"


def test_no_cors_unless_configured(client, org_a):
    origin = {"Origin": "https://evil.example"}
    r = client.get("/api/containers", headers={**origin, **bearer(org_a["token"])})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = client.options("/api/containers", headers={**origin, "Access-Control-Request-Method": "GET",
                                                   "Access-Control-Request-Headers": "authorization"})
    assert r.status_code < 500
    assert not [h for h in r.headers.keys() if h.lower().startswith("access-control-")]


@pytest.fixture
def cors_client(_schema):
    app = make_app(CORS_ORIGINS="https://ui.example.com, https://admin.example.com/")
    with app.app_context():
        empty_tables()
        limiter.reset()
        f = Factory()
        org = f.org()
        yield app.test_client(), f.token(f.user(org, "cora"))
        db.session.remove()


def test_cors_when_configured(cors_client):
    client, token = cors_client
    for origin in ("https://ui.example.com", "https://admin.example.com"):
        r = client.get("/api/containers", headers={"Origin": origin, **bearer(token)})
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert "Origin" in r.headers.get_all("Vary")
        assert "X-RateLimit-Remaining" in r.headers["Access-Control-Expose-Headers"]
    r = client.get("/api/containers", headers={"Origin": "https://evil.example", **bearer(token)})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = client.options("/api/agent/container-scan", headers={
        "Origin": "https://ui.example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "X-API-Key" in r.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in r.headers
    # the preflight itself authenticates nothing and spends no budget
    assert "X-RateLimit-Limit" not in r.headers


# --- request limits -------------------------------------------------------------------------

def test_over_long_headers_and_query_strings_are_json_4xx(client, org_a):
    token = bearer(org_a["token"])
    cases = [
        client.get("/api/containers", headers={"Authorization": "Bearer " + "x" * 20000}),
        submit(client, "k" * 20000, body(ALPHA)),
        client.get("/api/containers", headers={**token, "X-Filler": "y" * 20000}),
        client.get("/api/containers?search=" + "a" * 300, headers=token),
        client.get("/api/containers?" + "&".join(f"p{i}=v" for i in range(2000)), headers=token),
        client.get("/api/containers?page=" + "9" * 5000, headers=token),
    ]
    statuses = [r.status_code for r in cases]
    assert statuses == [431, 431, 431, 400, 414, 414]
    for r in cases:
        assert r.mimetype == "application/json"
        assert set(r.get_json()) >= {"error", "message"}


def test_body_over_the_limit_is_413_json_before_parsing(_schema):
    app = make_app(MAX_CONTENT_LENGTH=2048)
    with app.app_context():
        empty_tables()
        f = Factory()
        key = f.key(f.org())
        client = app.test_client()
        # not JSON at all: a parser would say 400; the size check answers first
        r = client.post("/api/agent/container-scan", data=b"x" * 4096, headers={"X-API-Key": key})
        assert r.status_code == 413 and r.get_json()["error"] == "payload_too_large"
        db.session.remove()


def test_token_endpoint_budget_per_forwarded_address_only_behind_a_proxy(_schema):
    for hops, expected in ((1, [200, 200, 429, 200]), (0, [200, 200, 429, 429])):
        app = make_app(AUTH_RATE_LIMIT="2 per minute", PROXY_FIX_X_FOR=hops)
        with app.app_context():
            empty_tables()
            limiter.reset()
            f = Factory()
            f.user(f.org(), "dave", password="pw-dave")
            client = app.test_client()
            got = [client.post("/api/auth/token", auth=("dave", "pw-dave"),
                               headers={"X-Forwarded-For": xff}).status_code
                   for xff in ("203.0.113.1", "203.0.113.1", "203.0.113.1", "198.51.100.2")]
            # with no trusted proxy a forged X-Forwarded-For buys no fresh budget
            assert got == expected, hops
            db.session.remove()


# --- health probes --------------------------------------------------------------------------

def test_probes_unauthenticated_and_never_limited(_schema):
    app = make_app(AGENT_RATE_LIMIT="1 per hour", USER_RATE_LIMIT="1 per hour",
                   AUTH_RATE_LIMIT="1 per hour")
    with app.app_context():
        limiter.reset()
        client = app.test_client()
        for _ in range(30):
            for path, status in (("/healthz", {"status": "ok"}), ("/readyz", {"status": "ready"})):
                r = client.get(path)
                assert r.status_code == 200 and r.get_json() == status
                assert "X-RateLimit-Limit" not in r.headers
        db.session.remove()


def test_readyz_503_json_when_the_database_is_down():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    app = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg2://postgres@127.0.0.1:{port}/none",
                   DB_CONNECT_TIMEOUT=2)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 503 and r.mimetype == "application/json"
    assert r.get_json()["error"] == "service_unavailable" and r.headers["Retry-After"]
    for r in (client.get("/api/containers", headers=bearer("cst_whatever")),
              client.post("/api/agent/container-scan", json=body(ALPHA), headers={"X-API-Key": "k"}),
              client.post("/api/auth/token", auth=("u", "p"))):
        assert r.status_code == 503, r.get_data(as_text=True)
        assert r.get_json()["error"] == "service_unavailable"
    with app.app_context():
        db.engine.dispose()
