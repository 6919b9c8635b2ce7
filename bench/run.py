"""Measure the service against floors taken on the same machine in the same run.

    python bench/run.py [--database-url URL] [--quick]

Needs a database filled by ``bench/seed.py`` and, for the throughput figure,
``wrk`` (``apt-get install wrk``; ``brew install wrk`` on macOS). Prints one
table and writes it as JSON to ``bench/results/latest.json``.
"""
import argparse
import http.client
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import fleet  # noqa: E402
from seed import DEFAULT_URL, _check_url, _esc, make_app  # noqa: E402

TARGETS = {
    "ingest_new": ("<=", 3.0), "ingest_unchanged": ("<=", 2.5),
    "list": ("<=", 4.0), "detail": ("<=", 8.0), "throughput": (">=", 0.40),
    "memory": ("<=", 5.0), "storage_known_finding_rows": ("<=", 0),
}
FLOOR_TABLE = "bench_floor_findings"


# --------------------------------------------------------------------- helpers

def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def ms(seconds):
    return round(seconds * 1000, 2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving ``wsgi:app`` against the bench database."""

    def __init__(self, url, workers, timeout=300):
        self.port = free_port()
        env = dict(os.environ, DATABASE_URL=url, SECRET_KEY="bench",
                   USER_RATE_LIMIT="100000000 per minute", AGENT_RATE_LIMIT="100000000 per minute",
                   DB_STATEMENT_TIMEOUT_MS="300000")
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--timeout", str(timeout),
             "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning", "wsgi:app"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                if request(self.port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn did not start; see {self.log.name}")
            time.sleep(0.2)
        # Every worker imports the app lazily; warm each one up.
        for _ in range(workers * 4):
            request(self.port, "GET", "/healthz")

    def workers(self):
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as fh:
            return [int(p) for p in fh.read().split()]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def request(port, method, path, body=None, headers=None):
    """One request on a new connection (gunicorn's sync workers close each one)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - start
    conn.close()
    return resp.status, data, elapsed


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------------ the bench

class Bench:
    def __init__(self, url, quick):
        _check_url(url)
        self.url = url
        self.quick = quick
        self.run_id = uuid.uuid4().hex[:8]
        self.results = {}
        self.notes = []
        self.pool = fleet.CvePool()
        self.app = make_app(url)
        self._accounts()

    # -- accounts and database access

    def _accounts(self):
        from sqlalchemy import select

        from app.auth import hash_secret, issue_token, new_secret
        from app.extensions import db
        from app.models import ApiKey, HostImage, Organization, User

        with self.app.app_context():
            org = db.session.scalar(select(Organization).where(Organization.name == "org1"))
            user = db.session.scalar(select(User).where(User.username == "user-org1"))
            admin = db.session.scalar(select(User).where(User.username == "admin"))
            if org is None or user is None or admin is None:
                sys.exit("the database is not seeded: run bench/seed.py first")
            self.org_id = org.id
            self._check_hashes()
            self.user_token = issue_token(user)[0]
            self.admin_token = issue_token(admin)[0]
            self.api_key = new_secret("csk_")
            db.session.add(ApiKey(organization_id=org.id, name=f"bench-{self.run_id}",
                                  permissions="agent", key_hash=hash_secret(self.api_key)))
            db.session.commit()
            self.detail_id = db.session.scalar(
                select(HostImage.id).where(HostImage.organization_id == org.id,
                                           HostImage.finding_set_id == 1)
                .order_by(HostImage.id).limit(1))
            db.session.remove()

    def _check_hashes(self):
        """The seeded finding sets must hash as the current parser hashes them."""
        from sqlalchemy import select

        from app.extensions import db
        from app.models import FindingSet
        seeded = db.session.scalar(select(FindingSet.content_hash).where(FindingSet.id == 2))
        if seeded != fleet.parsed(self.pool, 1).content_hash:
            sys.exit("the seeded finding sets do not hash as the current parser does "
                     "(app/trivy.py changed since seeding): run bench/seed.py again")

    def sql(self, statement, *params):
        import psycopg2
        conn = psycopg2.connect(self.url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def counters(self):
        (row,) = self.sql("SELECT (SELECT count(*) FROM finding_sets), "
                          "(SELECT coalesce(max(id), 0) FROM findings), "
                          "(SELECT count(*) FROM host_images)")
        return {"finding_sets": row[0], "max_finding_id": row[1], "host_images": row[2]}

    # -- bodies

    def envelope(self, host, images):
        return {"hostname": host, "images": images}

    def new_body(self, i, created_at="2026-02-09T10:30:00Z"):
        images = []
        for j in range(3):
            image = (f"registry.example.com:5000/bench/new-{self.run_id}-{i}-{j}", "1.0.0",
                     f"sha256:{i * 3 + j + 1:064x}")
            report = fleet.report(self.pool, 5000 + i * 3 + j, image, created_at=created_at,
                                  size=1000, nonce=f"{self.run_id}{i}x{j}")
            images.append({"image_name": f"{image[0]}:{image[1]}", "scan_results": report})
        return self.envelope(f"bench-new-{self.run_id}-{i}.example.internal", images)

    # -- floors

    def _floor_table(self, cur):
        cur.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")
        cur.execute(f"CREATE TABLE {FLOOR_TABLE} (LIKE findings INCLUDING DEFAULTS)")
        cur.execute(f"ALTER TABLE {FLOOR_TABLE} ADD PRIMARY KEY (id)")
        cur.execute(f"CREATE INDEX ON {FLOOR_TABLE} (finding_set_id, position)")

    def copy_floor(self, conn, body_bytes, set_id):
        """orjson.loads of the body, then COPY of its finding rows (committed)."""
        from app import trivy
        t0 = time.perf_counter()
        doc = orjson.loads(body_bytes)
        t_parse = time.perf_counter() - t0
        lines = []
        for image in doc["images"]:
            for pos, f in enumerate(trivy.parse_report(image["scan_results"]).findings):
                lines.append("\t".join(map(_esc, (
                    set_id, pos, f.severity_rank, f.cve_id, f.package_name, f.installed_version,
                    f.fixed_version, f.severity, f.title, f.description, f.target, f.pkg_path))))
        buf = io.StringIO("\n".join(lines) + "\n")
        with conn.cursor() as cur:
            t0 = time.perf_counter()
            cur.copy_expert(
                f"COPY {FLOOR_TABLE} (id, finding_set_id, position, severity_rank, cve_id, "
                "package_name, installed_version, fixed_version, severity, title, description, "
                "target, pkg_path) FROM STDIN", _with_ids(buf, set_id * 10000))
            conn.commit()
            t_copy = time.perf_counter() - t0
        return t_parse, t_copy

    # -- figures

    def ingest(self, server):
        import psycopg2
        n = 5 if self.quick else 20
        headers = {"X-API-Key": self.api_key, "Content-Type": "application/json"}
        conn = psycopg2.connect(self.url)
        with conn.cursor() as cur:
            self._floor_table(cur)
        conn.commit()
        floors, times, sizes = [], [], []
        before = self.counters()
        for i in range(n):
            body = orjson.dumps(self.new_body(i))
            sizes.append(len(body))
            t_parse, t_copy = self.copy_floor(conn, body, i + 1)
            floors.append(t_parse + t_copy)
            status, data, elapsed = request(server.port, "POST", "/api/agent/container-scan",
                                            body, headers)
            if status != 200 or orjson.loads(data)["vulnerabilities_found"] != 3000:
                raise RuntimeError(f"ingest new failed: {status} {data[:300]!r}")
            times.append(elapsed)
        after = self.counters()
        written = after["max_finding_id"] - before["max_finding_id"]
        self.results["ingest_new"] = {
            "p50_ms": ms(pct(times, 50)), "floor_p50_ms": ms(pct(floors, 50)),
            "ratio": round(pct(times, 50) / pct(floors, 50), 2), "requests": n,
            "body_bytes": int(sum(sizes) / len(sizes)), "finding_ids_used": written,
            "expected_finding_rows": 3000 * n}

        # Unchanged rescans of host 0: a new CreatedAt, the same findings.
        floors, times = [], []
        before = self.counters()
        for i in range(n):
            body = orjson.dumps(self.new_body(0, created_at=f"2026-03-01T10:{i:02d}:00Z"))
            t0 = time.perf_counter()
            orjson.loads(body)
            floors.append(time.perf_counter() - t0)
            status, data, elapsed = request(server.port, "POST", "/api/agent/container-scan",
                                            body, headers)
            if status != 200:
                raise RuntimeError(f"rescan failed: {status} {data[:300]!r}")
            times.append(elapsed)
        after = self.counters()
        self.results["ingest_unchanged"] = {
            "p50_ms": ms(pct(times, 50)), "floor_p50_ms": ms(pct(floors, 50)),
            "ratio": round(pct(times, 50) / pct(floors, 50), 2), "requests": n,
            "finding_rows_written": after["max_finding_id"] - before["max_finding_id"],
            "finding_sets_added": after["finding_sets"] - before["finding_sets"],
            "host_images_added": after["host_images"] - before["host_images"]}
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE {FLOOR_TABLE}")
        conn.commit()
        conn.close()

    def latency(self, server):
        n = 100 if self.quick else 500
        user = {"Authorization": f"Bearer {self.user_token}"}
        admin = {"Authorization": f"Bearer {self.admin_token}"}
        variants = {
            "list_default": ("/api/containers", user),
            "list_critical": ("/api/containers?severity=critical", user),
            "list_search": ("/api/containers?search=red", user),
            "list_page_2000": ("/api/containers?page=2000", user),
            "list_admin": ("/api/containers", admin),
            "detail_1000": (f"/api/containers/{self.detail_id}", user),
        }
        samples = {name: [] for name in variants}
        floor = []
        for path, headers in variants.values():  # warm up every worker
            for _ in range(4):
                request(server.port, "GET", path, headers=headers)
        for _ in range(n):
            status, _, elapsed = request(server.port, "GET", "/api/containers")
            assert status == 401, status
            floor.append(elapsed)
            for name, (path, headers) in variants.items():
                status, data, elapsed = request(server.port, "GET", path, headers=headers)
                if status != 200:
                    raise RuntimeError(f"{name}: {status} {data[:300]!r}")
                samples[name].append(elapsed)
        f50 = pct(floor, 50)
        self.results["framework_floor"] = {"p50_ms": ms(f50), "p99_ms": ms(pct(floor, 99)),
                                           "requests": n}
        for name, values in samples.items():
            _, data, _ = request(server.port, "GET", variants[name][0], headers=variants[name][1])
            doc = orjson.loads(data)
            self.results[name] = {
                "p50_ms": ms(pct(values, 50)), "p99_ms": ms(pct(values, 99)),
                "ratio": round(pct(values, 50) / f50, 2), "requests": n,
                "total" if "items" in doc else "findings":
                    doc["total"] if "items" in doc else len(doc["vulnerabilities"]),
                "items": len(doc["items"]) if "items" in doc else None}

    def throughput(self, url):
        if shutil.which("wrk") is None:
            self.notes.append("throughput skipped: wrk is not installed "
                              "(apt-get install wrk, or brew install wrk)")
            return
        seconds = 4 if self.quick else 10
        server = Server(url, workers=4)
        try:
            auth = f"Authorization: Bearer {self.user_token}"
            rates = {"healthz": [], "list": []}
            for _ in range(2):
                for name, path, extra in (("healthz", "/healthz", []),
                                          ("list", "/api/containers", ["-H", auth])):
                    out = subprocess.run(
                        ["wrk", "-t2", "-c8", f"-d{seconds}s", *extra,
                         f"http://127.0.0.1:{server.port}{path}"],
                        capture_output=True, text=True, check=True).stdout
                    if "Non-2xx" in out:
                        raise RuntimeError(f"wrk saw errors on {path}:\n{out}")
                    rates[name].append(float(out.split("Requests/sec:")[1].split()[0]))
        finally:
            server.stop()
        h, lst = sum(rates["healthz"]) / 2, sum(rates["list"]) / 2
        self.results["throughput"] = {"list_rps": round(lst, 1), "healthz_rps": round(h, 1),
                                      "ratio": round(lst / h, 3), "workers": 4,
                                      "tool": "wrk -t2 -c8"}

    def memory(self, url):
        target = (5 if self.quick else 50) * 1000 * 1000
        probe = orjson.dumps(fleet.report(self.pool, 9000, ("bench/big", "1", None), size=200,
                                          nonce=f"{self.run_id}p"))
        size = int(200 * target / len(probe))
        report = fleet.report(self.pool, 9001, (f"bench/big-{self.run_id}", "1", None),
                              size=size, nonce=f"{self.run_id}m")
        body = orjson.dumps(report)
        while len(body) > target:
            vulns = report["Results"][0]["Vulnerabilities"]
            del vulns[-max(1, (len(body) - target) // 1500):]
            body = orjson.dumps(report)
        del report
        server = Server(url, workers=1)
        try:
            (worker,) = server.workers()
            headers = {"X-API-Key": self.api_key, "Content-Type": "application/json"}
            small = orjson.dumps(self.new_body(99))
            request(server.port, "POST", "/api/agent/container-scan", small, headers)
            request(server.port, "GET", f"/api/containers/{self.detail_id}",
                    headers={"Authorization": f"Bearer {self.user_token}"})
            idle = proc_status(worker, "VmRSS")
            status, data, elapsed = request(
                server.port, "POST", f"/api/agent/container-scan?hostname=bench-big-{self.run_id}",
                body, headers)
            if status != 200:
                raise RuntimeError(f"50 MB ingest failed: {status} {data[:300]!r}")
            peak = proc_status(worker, "VmHWM")
        finally:
            server.stop()
        self.results["memory"] = {
            "body_bytes": len(body), "findings": orjson.loads(data)["vulnerabilities_found"],
            "worker_idle_rss_mb": round(idle / 2**20, 1), "worker_peak_rss_mb": round(peak / 2**20, 1),
            "ratio": round(peak / len(body), 2),
            "ratio_above_idle": round((peak - idle) / len(body), 2),
            "seconds": round(elapsed, 2)}

    def storage(self, server):
        hosts = 10 if self.quick else 100
        tables = ("organizations", "users", "api_keys", "tokens", "hosts", "finding_sets",
                  "findings", "host_images")
        size_sql = "SELECT " + " + ".join(f"pg_total_relation_size('{t}')" for t in tables)
        self.sql("VACUUM ANALYZE")
        (before_bytes,), = self.sql(size_sql)
        before = self.counters()
        catalog = fleet.images(50)
        known = [{"image_name": f"{n}:{t}", "scan_results": fleet.report(self.pool, k, (n, t, i))}
                 for k, (n, t, i) in enumerate(catalog[1:21], start=1)]
        headers = {"X-API-Key": self.api_key, "Content-Type": "application/json"}
        for h in range(hosts):
            images = [known[(h + j) % len(known)] for j in range(10)]
            body = orjson.dumps(self.envelope(f"bench-known-{self.run_id}-{h}.example.internal",
                                              images))
            status, data, _ = request(server.port, "POST", "/api/agent/container-scan", body,
                                      headers)
            if status != 200:
                raise RuntimeError(f"known-image ingest failed: {status} {data[:300]!r}")
        self.sql("VACUUM ANALYZE")
        (after_bytes,), = self.sql(size_sql)
        after = self.counters()
        added = after["host_images"] - before["host_images"]
        self.results["storage"] = {
            "bytes_per_host_image": int(before_bytes / before["host_images"]),
            "database_mb": round(before_bytes / 2**20, 1),
            "host_images_added": added,
            "bytes_per_added_host_image": int((after_bytes - before_bytes) / max(added, 1)),
            "finding_rows_added": after["max_finding_id"] - before["max_finding_id"],
            "finding_sets_added": after["finding_sets"] - before["finding_sets"]}


def _with_ids(buf, start):
    """Prefix each COPY line with an id (the floor table's primary key)."""
    out = io.StringIO()
    for n, line in enumerate(buf.getvalue().splitlines(), start):
        out.write(f"{n}\t{line}\n")
    out.seek(0)
    return out


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def verdict(key, ratio):
    op, limit = TARGETS[key]
    ok = ratio <= limit if op == "<=" else ratio >= limit
    return f"{op} {limit:g}", "ok" if ok else "MISS"


def table(results):
    rows = [("figure", "p50 ms", "p99 ms", "floor p50 ms", "ratio", "target", "")]
    floor = results.get("framework_floor", {})
    for key, label, target in (
            ("ingest_new", "ingest new 3x1,000 findings", "ingest_new"),
            ("ingest_unchanged", "ingest unchanged rescan", "ingest_unchanged"),
            ("list_default", "list default page", "list"),
            ("list_critical", "list severity=critical", "list"),
            ("list_search", "list search=red", "list"),
            ("list_page_2000", "list page=2000", "list"),
            ("list_admin", "list admin, all orgs", "list"),
            ("detail_1000", "detail, 1,000 findings", "detail")):
        r = results.get(key)
        if not r:
            continue
        f = r.get("floor_p50_ms", floor.get("p50_ms"))
        rows.append((label, r["p50_ms"], r.get("p99_ms", ""), f, r["ratio"], *verdict(target, r["ratio"])))
    if "throughput" in results:
        r = results["throughput"]
        rows.append((f"throughput list / healthz ({r['list_rps']:.0f} / {r['healthz_rps']:.0f} rps)",
                     "", "", "", r["ratio"], *verdict("throughput", r["ratio"])))
    if "memory" in results:
        r = results["memory"]
        rows.append((f"peak RSS / body ({r['worker_peak_rss_mb']} MB / {r['body_bytes'] / 1e6:.0f} MB)",
                     "", "", "", r["ratio"], *verdict("memory", r["ratio"])))
    if "ingest_unchanged" in results:
        r = results["ingest_unchanged"]
        rows.append(("finding rows written by rescans", "", "", "", r["finding_rows_written"],
                     *verdict("storage_known_finding_rows", r["finding_rows_written"])))
    if "storage" in results:
        r = results["storage"]
        rows.append((f"bytes per host image (db {r['database_mb']} MB)", "", "", "",
                     r["bytes_per_host_image"], "", ""))
        rows.append((f"bytes per added host image, known images ({r['host_images_added']})",
                     "", "", "", r["bytes_per_added_host_image"], "", ""))
        rows.append(("finding rows added for known images", "", "", "", r["finding_rows_added"],
                     *verdict("storage_known_finding_rows", r["finding_rows_added"])))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)
                               for i, (v, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--quick", action="store_true",
                        help="fewer requests and a 5 MB memory body: a smoke run, not a result")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for latency")
    parser.add_argument("--only", default="ingest,latency,throughput,memory,storage")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "latest.json"))
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("note: wrk not found; install it for the throughput figure "
              "(apt-get install wrk, or brew install wrk)", file=sys.stderr)
    only = set(args.only.split(","))
    bench = Bench(args.database_url, args.quick)
    started = time.time()
    server = Server(args.database_url, workers=args.workers)
    try:
        if "ingest" in only:
            bench.ingest(server)
        if "latency" in only:
            bench.latency(server)
        if "storage" in only:
            bench.storage(server)
    finally:
        server.stop()
    if "throughput" in only:
        bench.throughput(args.database_url)
    if "memory" in only:
        bench.memory(args.database_url)
    counts = bench.counters()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    (pg,), = bench.sql("SHOW server_version")
    report = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(), "postgresql": pg, "commit": commit, "quick": args.quick,
        "latency_workers": args.workers, "seconds": round(time.time() - started, 1),
        "fleet": counts, "results": bench.results, "notes": bench.notes,
        "targets": {k: f"{op} {v:g}" for k, (op, v) in TARGETS.items()},
    }
    print(f"{report['date']}  {report['machine']}  PostgreSQL {pg}  commit {commit}")
    print(f"fleet: {counts['host_images']} host images, {counts['finding_sets']} finding sets"
          f"{'  (QUICK run: not a result)' if args.quick else ''}")
    print(table(bench.results))
    for note in bench.notes:
        print("note:", note)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    print(f"wrote {os.path.relpath(args.out)}")


if __name__ == "__main__":
    main()
