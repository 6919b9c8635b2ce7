"""Storing a parsed submission atomically.

One transaction per request, written so that concurrent submissions can
neither duplicate nor corrupt rows: every write is an ``INSERT ... ON
CONFLICT`` against a unique constraint, and rows are touched in one global
order (host, then finding sets by hash, then host images by identity) so
that two transactions cannot wait on each other in a cycle.

On PostgreSQL a new finding set's rows go in with one ``COPY`` (text
format): several times faster than an ``INSERT`` per row, and the buffer is
one string a batch rather than a dict per finding. Other
databases take the generic ``executemany`` path.
"""
import hashlib
import itertools

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from .extensions import db
from .models import (
    Finding,
    FindingSet,
    Host,
    HostImage,
    ImageTally,
    ReportDigest,
    SeverityTally,
    severity_mask,
    utcnow,
)
from .trivy import PARSER_VERSION, SEVERITY_NAMES, ParsedReport

_COUNT_COLUMNS = SEVERITY_NAMES


def _upsert(model):
    dialect = db.session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model)


def report_digest(results):
    """SHA-256 of a report's results as orjson writes them back, under the parser's version.

    Trivy writes a new ``CreatedAt`` on every scan, but the same ``Results``
    when nothing changed; re-serializing makes the digest independent of how
    the body was formatted (indentation, PowerShell's rewriting). Written a
    few hundred vulnerabilities at a time, so a large report is never held
    twice; each piece is a JSON value behind a letter, which keeps the
    sequence unambiguous.
    """
    digest = hashlib.sha256(f"results-v{PARSER_VERSION}\n".encode())
    try:
        for result in results:
            vulns = result.get("Vulnerabilities") if isinstance(result, dict) else None
            if isinstance(vulns, list):
                digest.update(b"R" + orjson.dumps({k: v for k, v in result.items() if k != "Vulnerabilities"}))
                for start in range(0, len(vulns), 500):
                    digest.update(b"V" + orjson.dumps(vulns[start:start + 500]))
            else:
                digest.update(b"r" + orjson.dumps(result))
    except orjson.JSONEncodeError:
        # Nesting deeper than orjson writes (unknown keys Trivy never sends):
        # such results are simply parsed every time.
        return None
    return digest.hexdigest()


def known_reports(digests):
    """{digest: ParsedReport} for results parsed and stored before (findings not loaded)."""
    if not digests:
        return {}
    rows = db.session.execute(
        select(ReportDigest.digest, FindingSet.content_hash,
               *(getattr(FindingSet, name) for name in SEVERITY_NAMES))
        .join(FindingSet, FindingSet.id == ReportDigest.finding_set_id)
        .where(ReportDigest.digest.in_(sorted(digests))))
    return {row[0]: ParsedReport(None, dict(zip(SEVERITY_NAMES, row[2:], strict=True)), row[1])
            for row in rows}


def store_submission(organization_id, hostname, entries, agent_id=None, scanner=None):
    """Store ``entries`` for one host, all or nothing.

    Each entry is (ImageRef, ParsedReport, scanner_version, digest): the
    digest of results parsed in this request, remembered for rescans, or
    None for results already known by it. Returns the number of finding
    rows written (0 for known results).
    """
    now = utcnow()
    try:
        host_id = _upsert_host(organization_id, hostname, agent_id, now)
        # The same host image twice in one request: the last entry wins.
        latest = {}
        for entry in entries:
            latest[(entry[0].name, entry[0].ref_key)] = entry
        set_ids, written = _ensure_finding_sets(entry[1] for entry in latest.values())
        _remember_digests({entry[3]: set_ids[entry[1].content_hash]
                           for entry in latest.values() if entry[3]})
        if latest:
            _upsert_host_images(organization_id, host_id, latest, set_ids, now, scanner)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return written


def _upsert_host(organization_id, hostname, agent_id, now):
    stmt = _upsert(Host).values(organization_id=organization_id, hostname=hostname,
                                agent_id=agent_id, last_seen=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["organization_id", "hostname"],
        set_={"agent_id": func.coalesce(stmt.excluded.agent_id, Host.agent_id),
              "last_seen": stmt.excluded.last_seen},
    ).returning(Host.id)
    return db.session.execute(stmt).scalar_one()


def _ensure_finding_sets(parsed_reports):
    """Map content hash -> finding set id, writing only the sets not yet known."""
    by_hash = {p.content_hash: p for p in parsed_reports}
    if not by_hash:
        return {}, 0
    known = dict(db.session.execute(
        select(FindingSet.content_hash, FindingSet.id)
        .where(FindingSet.content_hash.in_(sorted(by_hash)))).all())
    written = 0
    for digest in sorted(set(by_hash) - set(known)):
        parsed = by_hash[digest]
        counts = parsed.counts
        stmt = (_upsert(FindingSet)
                .values(content_hash=digest, finding_count=len(parsed.findings), **counts)
                .on_conflict_do_nothing(index_elements=["content_hash"])
                .returning(FindingSet.id))
        set_id = db.session.execute(stmt).scalar()
        if set_id is None:
            # Another transaction stored the same result first; it committed
            # before our insert returned, so its id is visible now.
            set_id = db.session.execute(
                select(FindingSet.id).where(FindingSet.content_hash == digest)).scalar_one()
        else:
            _insert_findings(set_id, parsed.findings)
            written += len(parsed.findings)
        known[digest] = set_id
    return known, written


_FINDING_COLUMNS = ("finding_set_id", "position", "severity_rank", "cve_id", "package_name",
                    "installed_version", "fixed_version", "severity", "title", "description",
                    "target", "pkg_path")
# COPY's text format: tab-separated, \N for NULL, backslash escapes. Far
# cheaper to write from Python than CSV (the csv module inspects every
# character; here str.replace runs only on the rare field that needs it).
_COPY_SQL = f"COPY findings ({', '.join(_FINDING_COLUMNS)}) FROM STDIN"
_SEVERITY_LABELS = tuple(name.upper() for name in SEVERITY_NAMES)


def _insert_findings(set_id, findings):
    if not findings:
        return
    if db.session.get_bind().dialect.name == "postgresql":
        _copy_findings(set_id, findings)
        return
    rows = [
        {"finding_set_id": set_id, "position": i, "severity_rank": f.severity_rank,
         "cve_id": f.cve_id, "package_name": f.package_name,
         "installed_version": f.installed_version, "fixed_version": f.fixed_version,
         "severity": f.severity, "title": f.title, "description": f.description,
         "target": f.target, "pkg_path": f.pkg_path}
        for i, f in enumerate(findings)
    ]
    db.session.execute(insert(Finding.__table__), rows)


def _copy_text(value):
    """One field of COPY's text format."""
    if value is None:
        return "\\N"
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_findings(set_id, findings):
    """COPY one finding set's rows, in this session's transaction."""
    labels, text = _SEVERITY_LABELS, _copy_text
    lines = (f"{set_id}\t{i}\t{f.severity_rank}\t" + "\t".join((
        text(f.cve_id), text(f.package_name), text(f.installed_version), text(f.fixed_version),
        labels[f.severity_rank], text(f.title), text(f.description), text(f.target),
        text(f.pkg_path))) + "\n" for i, f in enumerate(findings))
    cursor = db.session.connection().connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(_COPY_SQL, _LineStream(lines), size=1 << 20)
    finally:
        cursor.close()


class _LineStream:
    """A file to COPY from that joins a batch of lines at a time.

    A 50 MB report's rows as one string would be held whole (and a
    ``StringIO`` of it costs four bytes a character once read back); this
    holds one batch.
    """

    def __init__(self, lines, batch=500):
        self._lines = lines
        self._batch = batch

    def read(self, size=-1):
        return "".join(itertools.islice(self._lines, self._batch))


def _remember_digests(set_by_digest):
    if set_by_digest:
        rows = [{"digest": d, "finding_set_id": set_by_digest[d]} for d in sorted(set_by_digest)]
        db.session.execute(_upsert(ReportDigest).values(rows).on_conflict_do_nothing(index_elements=["digest"]))


def _upsert_host_images(organization_id, host_id, latest, set_ids, now, scanner):
    # The host row is locked by its upsert above, so these rows cannot change
    # under us before commit: the tallies' deltas are exact.
    old = {(name, ref_key): (tag or "", mask) for name, ref_key, tag, mask in db.session.execute(
        select(HostImage.image_name, HostImage.ref_key, HostImage.image_tag, HostImage.severity_mask)
        .where(HostImage.host_id == host_id,
               HostImage.image_name.in_(sorted({name for name, _ in latest}))))}
    rows, deltas = [], {}
    for identity in sorted(latest):
        ref, parsed, scanner_version, _ = latest[identity]
        mask = severity_mask(parsed.counts)
        row = {"organization_id": organization_id, "host_id": host_id,
               "image_name": ref.name, "image_tag": ref.tag, "ref_key": ref.ref_key,
               "image_digest": ref.digest, "image_id": ref.image_id,
               "finding_set_id": set_ids[parsed.content_hash], "severity_mask": mask,
               "scanner": scanner, "scanner_version": scanner_version, "last_scanned": now}
        row.update(parsed.counts)
        rows.append(row)
        new_key = (ref.name, ref.tag or "", mask)
        previous = old.get(identity)
        if previous is not None:
            old_key = (ref.name,) + previous
            if old_key == new_key:
                continue
            deltas[old_key] = deltas.get(old_key, 0) - 1
        deltas[new_key] = deltas.get(new_key, 0) + 1
    stmt = _upsert(HostImage).values(rows)
    updated = ("image_tag", "image_digest", "image_id", "finding_set_id", "severity_mask", "scanner",
               "scanner_version", "last_scanned") + _COUNT_COLUMNS
    stmt = stmt.on_conflict_do_update(
        index_elements=["host_id", "image_name", "ref_key"],
        set_={name: stmt.excluded[name] for name in updated},
    )
    db.session.execute(stmt)
    _add_to_tallies(organization_id, deltas)


def _add_to_tallies(organization_id, deltas):
    """Apply {(name, tag_key, mask): change} to the organization's tallies."""
    by_image, by_mask = [], {}
    for (name, tag, mask), change in sorted(deltas.items()):
        if change:
            by_image.append({"organization_id": organization_id, "image_name": name,
                             "tag_key": tag, "name_lower": func.lower(name),
                             "tag_lower": func.lower(tag), "severity_mask": mask,
                             "host_images": change})
            by_mask[mask] = by_mask.get(mask, 0) + change
    by_mask = [{"organization_id": organization_id, "severity_mask": mask, "host_images": change}
               for mask, change in sorted(by_mask.items()) if change]
    for model, rows, keys in (
            (ImageTally, by_image, ["organization_id", "image_name", "tag_key", "severity_mask"]),
            (SeverityTally, by_mask, ["organization_id", "severity_mask"])):
        if rows:
            stmt = _upsert(model).values(rows)
            stmt = stmt.on_conflict_do_update(
                index_elements=keys, set_={"host_images": model.host_images + stmt.excluded.host_images})
            db.session.execute(stmt)
