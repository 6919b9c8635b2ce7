"""Rate limits across gunicorn workers with Redis, and with Redis gone."""
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from harness import (
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    base_env,
    gunicorn,
    needs_redis,
    provision,
    scratch_sqlite,
    sqlite_pass_only,
    tcp_proxy,
)

# Limits are independent of the database: these run once, in the SQLite pass.
pytestmark = [pytest.mark.slow, sqlite_pass_only, needs_redis]

BODY = {"hostname": "limited-host", "images": [{"image_name": "nginx:1.25", "scan_results": None}]}


@pytest.fixture(scope="module")
def site():
    with scratch_sqlite() as url:
        env = base_env(url)
        yield env, provision(env, keys=2)


def _submit(url, key, extra_headers=None):
    headers = {"X-API-Key": key, **(extra_headers or {})}
    return requests.post(url + "/api/agent/container-scan", json=BODY, headers=headers, timeout=30)


def _assert_json(r):
    assert r.headers["Content-Type"].startswith("application/json"), r.text[:200]
    body = r.json()
    assert set(body) >= {"error", "message"} if r.status_code >= 400 else True
    return body


def test_agent_limit_is_one_budget_across_four_workers(site):
    env, creds = site
    env = dict(env, RATELIMIT_STORAGE_URI=f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
               RATELIMIT_KEY_PREFIX=f"it-{uuid.uuid4().hex}", AGENT_RATE_LIMIT="20 per hour",
               AUTH_RATE_LIMIT="3 per hour", PROXY_FIX_X_FOR="1")
    with gunicorn(env, workers=4) as server:
        key, other_key = creds["keys"]
        with ThreadPoolExecutor(5) as pool:
            responses = list(pool.map(lambda _: _submit(server.url, key), range(25), timeout=120))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 20 + [429] * 5
        for r in responses:
            _assert_json(r)
            assert r.headers["X-RateLimit-Limit"] == "20"
            if r.status_code == 429:
                assert r.json()["error"] == "rate_limited"
                assert 0 < int(r.headers["Retry-After"]) <= 3600
                assert r.headers["X-RateLimit-Remaining"] == "0"
        # the requests really were spread over several processes
        assert len(server.pids_served("POST /api/agent/container-scan")) >= 2
        # another key has its own budget
        assert _submit(server.url, other_key).status_code == 200

        # POST /api/auth/token: per client address, the address taken from
        # X-Forwarded-For because PROXY_FIX_X_FOR=1 (one proxy in front).
        auth = (creds["username"], creds["password"])

        def token(address):
            return requests.post(server.url + "/api/auth/token", auth=auth, timeout=30,
                                 headers={"X-Forwarded-For": address})

        first = [token("203.0.113.7").status_code for _ in range(4)]
        assert first == [200, 200, 200, 429]
        assert token("203.0.113.7").json()["error"] == "rate_limited"
        assert [token("198.51.100.9").status_code for _ in range(4)] == [200, 200, 200, 429]
        log = server.text()
    assert "Traceback" not in log
    for secret in [creds["token"], *creds["keys"], creds["password"]]:
        assert secret not in log


def test_redis_down_falls_back_to_per_process_limits(site):
    """Redis gone: served with per-process in-memory limits and a warning, never a 500."""
    env, creds = site
    with tcp_proxy(REDIS_HOST, REDIS_PORT) as proxy:
        env = dict(env, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}",
                   RATELIMIT_KEY_PREFIX=f"it-{uuid.uuid4().hex}", AGENT_RATE_LIMIT="5 per hour")
        # One worker so the per-process fallback budget is exact.
        with gunicorn(env, workers=1) as server:
            assert [_submit(server.url, creds["keys"][0]).status_code for _ in range(2)] == [200, 200]

            # Redis stopped (refused), then Redis unreachable (silent): a fresh key each time,
            # since the per-process fallback keeps its counts.
            for phase, (hang, key) in enumerate(zip((False, True), creds["keys"], strict=True)):
                proxy.cut(hang=hang)
                started = time.monotonic()
                statuses = []
                for _ in range(7):
                    r = _submit(server.url, key)
                    _assert_json(r)
                    statuses.append(r.status_code)
                elapsed = time.monotonic() - started
                # in memory, a fresh budget of 5 for this process
                assert statuses == [200] * 5 + [429] * 2, (hang, statuses)
                assert elapsed < 20, (hang, elapsed)
                assert server.text().count(
                    "Rate limit storage unreachable - falling back to in-memory storage") == phase + 1
                proxy.restore()
                deadline = time.monotonic() + 45
                while server.text().count("Rate limit storage recovered") < phase + 1:
                    assert time.monotonic() < deadline, "the limiter never went back to Redis"
                    r = _submit(server.url, key)
                    assert r.status_code in (200, 429), r.text
                    _assert_json(r)
                    time.sleep(0.5)
            # back on Redis, whose budget for the first key was kept: 2 before the cut,
            # 1 (the request that found Redis back), and this one
            r = _submit(server.url, creds["keys"][0])
            assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "1"
            log = server.text()
    access = [line for line in log.splitlines() if line.startswith("pid=")]
    assert access and not [line for line in access if line.endswith(" 500")]
