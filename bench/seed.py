"""Fill a PostgreSQL database with a synthetic fleet, through the project's schema.

    python bench/seed.py [--database-url URL] [--hosts 10000] [--images 100000] [--sets 2000]

The database is emptied (schema ``public`` dropped), migrated with the
project's Alembic migrations, then filled with COPY. It refuses databases
named ``test`` or ``test_*``.
"""
import argparse
import io
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fleet  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/bench"
BENCH_PASSWORD = "bench-password"


def _esc(value):
    if value is None:
        return "\\N"
    value = str(value)
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (value.replace("\\", "\\\\").replace("\t", "\\t")
                 .replace("\n", "\\n").replace("\r", "\\r"))
    return value


def _copy(cursor, table, columns, rows, chunk=20000):
    """COPY ``rows`` (an iterable of tuples) into ``table``, streamed in chunks."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    buf, n, total = [], 0, 0
    for row in rows:
        buf.append("\t".join(map(_esc, row)))
        n += 1
        if n == chunk:
            cursor.copy_expert(sql, io.StringIO("\n".join(buf) + "\n"))
            total += n
            buf, n = [], 0
    if buf:
        cursor.copy_expert(sql, io.StringIO("\n".join(buf) + "\n"))
        total += n
    return total


def make_app(url):
    os.environ.setdefault("SECRET_KEY", "bench")
    from app import create_app
    from config import Config, database_url

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = database_url(url)

    return create_app(BenchConfig)


def _check_url(url):
    name = url.rsplit("/", 1)[-1].split("?")[0]
    if name == "test" or name.startswith("test_"):
        sys.exit(f"refusing to seed {name!r}: databases named test or test_* belong to test suites")


def seed(url, hosts, images, sets, log=print):
    _check_url(url)
    from flask_migrate import upgrade
    from sqlalchemy import text
    from werkzeug.security import generate_password_hash

    from app.auth import hash_secret, new_secret
    from app.extensions import db
    from app.models import ApiKey, Organization, User, severity_mask

    started = time.perf_counter()
    app = make_app(url)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        orgs = [Organization(name=f"org{i + 1}") for i in range(len(fleet.ORG_WEIGHTS))]
        db.session.add_all(orgs)
        db.session.flush()
        pw = generate_password_hash(BENCH_PASSWORD, method="pbkdf2:sha256:1000")
        for org in orgs:
            db.session.add(User(username=f"user-{org.name}", password_hash=pw,
                                organization_id=org.id))
            db.session.add(ApiKey(organization_id=org.id, name="seed", permissions="agent",
                                  key_hash=hash_secret(new_secret("csk_"))))
        db.session.add(User(username="admin", password_hash=pw, organization_id=orgs[0].id,
                            is_admin=True))
        db.session.commit()
        org_ids = [o.id for o in orgs]

        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute("SET synchronous_commit = off")
            log(f"migrated and created accounts in {time.perf_counter() - started:.1f}s")

            pool = fleet.CvePool()
            catalog = fleet.images(sets)
            now = datetime.now(timezone.utc)
            counts = {}
            t0 = time.perf_counter()

            def finding_rows():
                fid = 0
                set_rows = []
                for k in range(sets):
                    parsed = fleet.parsed(pool, k)
                    counts[k + 1] = parsed.counts
                    set_rows.append((k + 1, parsed.content_hash, len(parsed.findings),
                                     *(parsed.counts[s] for s in fleet.trivy.SEVERITY_NAMES),
                                     now.isoformat()))
                    for pos, f in enumerate(parsed.findings):
                        fid += 1
                        yield (fid, k + 1, pos, f.severity_rank, f.cve_id, f.package_name,
                               f.installed_version, f.fixed_version, f.severity, f.title,
                               f.description, f.target, f.pkg_path)
                finding_rows.sets = set_rows

            # finding_sets first (the foreign key), so compute them up front.
            rows = list(finding_rows())
            _copy(cur, "finding_sets", ("id", "content_hash", "finding_count", "critical", "high",
                                        "medium", "low", "unknown", "created_at"),
                  finding_rows.sets)
            n = _copy(cur, "findings", ("id", "finding_set_id", "position", "severity_rank",
                                        "cve_id", "package_name", "installed_version",
                                        "fixed_version", "severity", "title", "description",
                                        "target", "pkg_path"), rows)
            del rows
            log(f"{sets} finding sets, {n} findings in {time.perf_counter() - t0:.1f}s")

            t0 = time.perf_counter()
            rng = random.Random(11)
            host_org = rng.choices(org_ids, fleet.ORG_WEIGHTS, k=hosts)
            _copy(cur, "hosts", ("id", "organization_id", "hostname", "agent_id", "last_seen"),
                  ((i + 1, host_org[i], fleet.hostname(i + 1, host_org[i]), f"agent-{i + 1:05d}",
                    now.isoformat()) for i in range(hosts)))
            # Popularity: a few images run on many hosts (Zipf-like), most on few.
            weights = [1.0 / (r + 1) ** 0.8 for r in range(sets)]
            per_host = [images // hosts + (1 if i < images % hosts else 0) for i in range(hosts)]

            def image_rows():
                hid = 0
                for h in range(hosts):
                    chosen = set()
                    while len(chosen) < min(per_host[h], sets):
                        chosen.update(rng.choices(range(sets), weights,
                                                  k=per_host[h] - len(chosen)))
                    for k in sorted(chosen):
                        hid += 1
                        name, tag, image_id = catalog[k]
                        c = counts[k + 1]
                        scanned = now - timedelta(seconds=rng.randint(0, 7 * 86400))
                        yield (hid, host_org[h], h + 1, name, tag, tag, None, image_id, k + 1,
                               c["critical"], c["high"], c["medium"], c["low"], c["unknown"],
                               severity_mask(c), "trivy", "0.58.1", scanned.isoformat())

            n = _copy(cur, "host_images", (
                "id", "organization_id", "host_id", "image_name", "image_tag", "ref_key",
                "image_digest", "image_id", "finding_set_id", "critical", "high", "medium",
                "low", "unknown", "severity_mask", "scanner", "scanner_version", "last_scanned"),
                image_rows())
            # The listing's tallies, as the ingest keeps them.
            cur.execute(
                "INSERT INTO image_tallies (organization_id, image_name, tag_key, name_lower, "
                "tag_lower, severity_mask, host_images) SELECT organization_id, image_name, "
                "coalesce(image_tag, ''), lower(image_name), lower(coalesce(image_tag, '')), "
                "severity_mask, count(*) FROM host_images GROUP BY 1, 2, 3, 6")
            cur.execute(
                "INSERT INTO severity_tallies (organization_id, severity_mask, host_images) "
                "SELECT organization_id, severity_mask, count(*) FROM host_images GROUP BY 1, 2")
            for table in ("finding_sets", "findings", "hosts", "host_images"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT coalesce(max(id), 1) FROM {table}))")
            raw.commit()
            log(f"{hosts} hosts, {n} host images in {time.perf_counter() - t0:.1f}s")
            t0 = time.perf_counter()
            raw.set_isolation_level(0)
            cur.execute("VACUUM ANALYZE")
            log(f"vacuum analyze in {time.perf_counter() - t0:.1f}s")
        finally:
            raw.close()
        db.engine.dispose()
    log(f"seeded in {time.perf_counter() - started:.1f}s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--hosts", type=int, default=10000)
    parser.add_argument("--images", type=int, default=100000)
    parser.add_argument("--sets", type=int, default=2000)
    args = parser.parse_args(argv)
    seed(args.database_url, args.hosts, args.images, args.sets)


if __name__ == "__main__":
    main()
