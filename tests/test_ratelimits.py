"""Rate limits: per API key for agents, per user per endpoint, JSON 429s."""
import pytest
from conftest import Factory, bearer, empty_tables, make_app, submit

from app.extensions import limiter

BODY = {"hostname": "h", "images": []}


@pytest.fixture
def limited(_schema):
    app = make_app(AGENT_RATE_LIMIT="3 per minute", USER_RATE_LIMIT="2 per minute",
                   AUTH_RATE_LIMIT="2 per minute")
    with app.app_context():
        empty_tables()
        limiter.reset()
        f = Factory()
        org = f.org()
        user = f.user(org, "ann")
        other = f.user(org, "ben")
        yield {"client": app.test_client(), "key": f.key(org), "key2": f.key(org, name="k2"),
               "token": f.token(user), "token2": f.token(user), "other": f.token(other)}


def test_agent_limit_per_key_with_json_429(limited):
    client = limited["client"]
    statuses = [submit(client, limited["key"], BODY).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    r = submit(client, limited["key"], BODY)
    assert r.status_code == 429
    assert r.get_json()["error"] == "rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["X-RateLimit-Limit"] == "3" and r.headers["X-RateLimit-Remaining"] == "0"
    assert submit(client, limited["key2"], BODY).status_code == 200
    # the agents' header shares the key's budget
    assert submit(client, limited["key"], BODY, header="X-Agent-Key").status_code == 429


def test_successful_responses_carry_rate_limit_headers(limited):
    r = submit(limited["client"], limited["key"], BODY)
    assert r.headers["X-RateLimit-Limit"] == "3" and r.headers["X-RateLimit-Remaining"] == "2"
    assert "X-RateLimit-Reset" in r.headers


def test_user_limit_per_user_and_per_endpoint(limited):
    client = limited["client"]
    get = lambda path, token: client.get(path, headers=bearer(token)).status_code  # noqa: E731
    assert [get("/api/containers", limited["token"]) for _ in range(2)] == [200, 200]
    # a second token of the same user shares the user's budget
    assert get("/api/containers", limited["token2"]) == 429
    # another user has their own, and the detail endpoint its own budget
    assert get("/api/containers", limited["other"]) == 200
    assert get("/api/containers/1", limited["token"]) == 404


def test_unauthenticated_requests_do_not_spend_a_key_budget(limited):
    client = limited["client"]
    for _ in range(5):
        assert submit(client, "csk_wrong", BODY).status_code == 401
    assert submit(client, limited["key"], BODY).status_code == 200


def test_token_endpoint_limited_per_address(limited):
    client = limited["client"]
    statuses = [client.post("/api/auth/token").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_retry_after_only_on_refusals(limited):
    r = submit(limited["client"], limited["key"], BODY)
    assert r.status_code == 200 and "Retry-After" not in r.headers
    assert "X-RateLimit-Remaining" in r.headers
