"""Concurrent submissions against real gunicorn: nothing lost, nothing duplicated.

8 agents x 25 submissions, in lock-step rounds so that two agents hit the same
host (one of them spelling it in capitals with spaces) and the same image at the
same moment, and every agent of a round sends the same reports, so several
transactions create the same finding set at once. Afterwards every host image
is sent once more, alone, and the stored state must be exactly that.
"""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from harness import (
    base_env,
    engine_for,
    gunicorn,
    needs_postgres_pass,
    provision,
    scratch_postgres,
    scratch_sqlite,
    sqlite_pass_only,
)
from sqlalchemy import text

pytestmark = pytest.mark.slow

AGENTS, ROUNDS = 8, 25
HOSTS = [f"node-{i}.fleet.example" for i in range(5)]
# (reference sent, stored name, stored tag)
IMAGES = [
    ("nginx:1.25", "nginx", "1.25"),
    ("redis:7.2", "redis", "7.2"),
    ("registry.example.com:5000/team/app:2.0", "registry.example.com:5000/team/app", "2.0"),
    ("app@sha256:" + "ab" * 32, "app", None),
]
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


def report(variant):
    """A schema-2 Trivy report; the same variant is the same finding set on any image."""
    if variant is None:
        return None
    vulns = [{"VulnerabilityID": f"CVE-2099-{variant:03d}{j:02d}", "PkgName": f"pkg{j}",
              "InstalledVersion": "1.0", "Severity": SEVERITIES[(variant + j) % 5],
              **({"FixedVersion": "1.1"} if j % 2 else {})}
             for j in range(3 + variant % 5)]
    return {"SchemaVersion": 2, "Results": [
        {"Target": "image (debian 12.4)", "Class": "os-pkgs", "Type": "debian",
         "Vulnerabilities": vulns}]}


def expected_counts(variant):
    counts = {s.lower(): 0 for s in SEVERITIES}
    if variant is not None:
        for vuln in report(variant)["Results"][0]["Vulnerabilities"]:
            counts[vuln["Severity"].lower()] += 1
    return counts


def expected_cves(variant):
    if variant is None:
        return set()
    return {v["VulnerabilityID"] for v in report(variant)["Results"][0]["Vulnerabilities"]}


def storm_body(agent, rnd):
    """What ``agent`` sends in round ``rnd``: agents 2k and 2k+1 share a host and an image."""
    host = HOSTS[(rnd + agent // 2) % len(HOSTS)]
    if agent % 2:
        host = f"  {host.upper()} "
    picks = [(rnd + agent) % len(IMAGES), (rnd + agent + 1) % len(IMAGES)]
    # Every 5th round brings brand-new finding sets that all agents create at once.
    variants = [100 + rnd + i if rnd % 5 == 0 else (rnd + i) % 9 for i in picks]
    images = [{"image_name": IMAGES[i][0], "image_id": f"sha256:{i:064d}", "scan_results": report(v)}
              for i, v in zip(picks, variants, strict=True)]
    if rnd % 7 == 3:
        # the same host image twice in one request: the last entry counts
        images.append(dict(images[0], scan_results=report(50 + agent)))
    return {"hostname": host, "images": images}


def final_variant(host_index, image_index):
    value = (host_index * 7 + image_index * 3) % 11
    return None if value == 10 else value


def run_storm(server, creds):
    statuses, failures = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(AGENTS, timeout=60)
    keys = creds["keys"]

    def agent(index):
        session = requests.Session()
        headers = {"X-API-Key": keys[index % len(keys)]}
        for rnd in range(ROUNDS):
            barrier.wait()
            body = storm_body(index, rnd)
            try:
                r = session.post(server.url + "/api/agent/container-scan", json=body,
                                 headers=headers, timeout=60)
                status = r.status_code
                if status != 200:
                    failures.append((index, rnd, status, r.text[:300]))
            except requests.RequestException as exc:
                status = f"error: {exc}"
                failures.append((index, rnd, status, ""))
            with lock:
                statuses.append(status)

    started = time.monotonic()
    with ThreadPoolExecutor(AGENTS) as pool:
        futures = [pool.submit(agent, i) for i in range(AGENTS)]
        for future in futures:
            future.result(timeout=240)
    return statuses, failures, time.monotonic() - started


def send_finals(server, creds):
    for h, host in enumerate(HOSTS):
        body = {"hostname": host, "images": [
            {"image_name": ref, "scan_results": report(final_variant(h, i))}
            for i, (ref, _, _) in enumerate(IMAGES)]}
        r = requests.post(server.url + "/api/agent/container-scan", json=body,
                          headers={"X-API-Key": creds["keys"][0]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["images_processed"] == len(IMAGES)


def check_database(url):
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            q = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
            assert q("SELECT organization_id, hostname FROM hosts GROUP BY organization_id, hostname "
                     "HAVING count(*) > 1") == []
            assert sorted(r[0] for r in q("SELECT hostname FROM hosts")) == sorted(HOSTS)
            assert q("SELECT host_id, image_name, ref_key FROM host_images "
                     "GROUP BY host_id, image_name, ref_key HAVING count(*) > 1") == []
            assert q("SELECT count(*) FROM host_images")[0][0] == len(HOSTS) * len(IMAGES)
            assert q("SELECT content_hash FROM finding_sets GROUP BY content_hash "
                     "HAVING count(*) > 1") == []
            # every set holds exactly the findings it counts
            bad_sets = q("SELECT s.id, s.finding_count, count(f.id) FROM finding_sets s "
                         "LEFT JOIN findings f ON f.finding_set_id = s.id "
                         "GROUP BY s.id, s.finding_count "
                         "HAVING count(f.id) <> s.finding_count "
                         "OR s.critical + s.high + s.medium + s.low + s.unknown <> s.finding_count")
            assert bad_sets == []
            # the listing's running totals agree with the rows they count
            counted = {tuple(r[:2]): r[2] for r in q(
                "SELECT organization_id, severity_mask, count(*) FROM host_images GROUP BY 1, 2")}
            tallied = {tuple(r[:2]): r[2] for r in q(
                "SELECT organization_id, severity_mask, host_images FROM severity_tallies") if r[2]}
            assert tallied == counted
            counted = {tuple(r[:4]): r[4] for r in q(
                "SELECT organization_id, image_name, coalesce(image_tag, ''), severity_mask, count(*) "
                "FROM host_images GROUP BY 1, 2, 3, 4")}
            tallied = {tuple(r[:4]): r[4] for r in q(
                "SELECT organization_id, image_name, tag_key, severity_mask, host_images "
                "FROM image_tallies") if r[4]}
            assert tallied == counted
            rows = q("SELECT h.hostname, i.image_name, i.image_tag, i.finding_set_id, i.critical, "
                     "i.high, i.medium, i.low, i.unknown FROM host_images i "
                     "JOIN hosts h ON h.id = i.host_id")
            cves = {}
            for set_id, cve in q("SELECT finding_set_id, cve_id FROM findings"):
                cves.setdefault(set_id, set()).add(cve)
            n_sets = q("SELECT count(*) FROM finding_sets")[0][0]
    finally:
        engine.dispose()
    by_identity = {(r[0], r[1], r[2]): r for r in rows}
    for h, host in enumerate(HOSTS):
        for i, (_, name, tag) in enumerate(IMAGES):
            row = by_identity[(host, name, tag)]
            variant = final_variant(h, i)
            assert cves.get(row[3], set()) == expected_cves(variant), (host, name)
            assert dict(zip(("critical", "high", "medium", "low", "unknown"), row[4:], strict=True)) \
                == expected_counts(variant), (host, name)
    return n_sets


def check_api(server, creds):
    r = requests.get(server.url + "/api/containers", params={"per_page": 100},
                     headers={"Authorization": f"Bearer {creds['token']}"}, timeout=30)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(HOSTS) * len(IMAGES)
    seen = {(item["hostname"], item["image_name"], item["image_tag"]): item["vulnerability_count"]
            for item in page["items"]}
    assert len(seen) == len(HOSTS) * len(IMAGES)
    for h, host in enumerate(HOSTS):
        for i, (_, name, tag) in enumerate(IMAGES):
            assert seen[(host, name, tag)] == expected_counts(final_variant(h, i))


def storm(database_url, workers, threads, label):
    env = base_env(database_url)
    creds = provision(env, keys=3)
    with gunicorn(env, workers=workers, threads=threads) as server:
        statuses, failures, seconds = run_storm(server, creds)
        send_finals(server, creds)
        check_api(server, creds)
        log = server.text()
    n_sets = check_database(database_url)
    fivexx = sum(1 for s in statuses if not isinstance(s, int) or s >= 500)
    print(f"\n[{label}] {len(statuses)} concurrent submissions in {seconds:.1f}s "
          f"({len(statuses) / seconds:.0f}/s), statuses {sorted(set(map(str, statuses)))}, "
          f"5xx/errors {fivexx}, finding sets {n_sets}")
    assert failures == []
    assert len(statuses) == AGENTS * ROUNDS
    for needle in ("Traceback", "deadlock", "database is locked", "WORKER TIMEOUT"):
        assert needle not in log, needle
    for secret in [creds["token"], *creds["keys"]]:
        assert secret not in log


@needs_postgres_pass
def test_concurrent_submissions_postgresql_4_workers():
    with scratch_postgres() as url:
        storm(url, workers=4, threads=1, label="PostgreSQL, 4 workers")


@sqlite_pass_only
def test_concurrent_submissions_sqlite_1_worker():
    # One worker with four threads: concurrent writers inside one process.
    with scratch_sqlite() as url:
        storm(url, workers=1, threads=4, label="SQLite, 1 worker x 4 threads")
