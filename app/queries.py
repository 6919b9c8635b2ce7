"""Scoped, filtered, paginated reads of host images and their findings."""
import functools

from sqlalchemy import bindparam, func, or_, select

from .extensions import db
from .models import SEVERITY_BITS, Host, HostImage, ImageTally, SeverityTally

_LIST_COLUMNS = (
    HostImage.id, HostImage.image_name, HostImage.image_tag, HostImage.image_id,
    Host.hostname, HostImage.organization_id, HostImage.last_scanned,
    HostImage.critical, HostImage.high, HostImage.medium, HostImage.low, HostImage.unknown,
)


class Forbidden(Exception):
    """A non-admin asked for another organization."""


def escape_like(value):
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# Offsets up to this are read forward in the same statement as the total;
# deeper pages first read the total, then walk the index from the nearer end.
_SHALLOW = 1000


def _filters(model, searched_columns, by_org, masked):
    """The listing's WHERE for host images or their tallies (the same predicates), as bind parameters.

    ``searched_columns`` are the lowered name and tag a search matches, or None.
    """
    filters = []
    if by_org:
        filters.append(model.organization_id == bindparam("org"))
    if masked:
        filters.append(model.severity_mask.op("&")(bindparam("mask")) != 0)
    if searched_columns:
        pattern = bindparam("pattern")
        filters.append(or_(*(column.like(pattern, escape="\\") for column in searched_columns)))
    return filters


@functools.cache
def _statements(by_org, masked, searched):
    """(total, shallow page with total, deep page, deep page from the oldest end) for one filter shape.

    Built once per shape and executed with parameters: building and
    hashing a statement costs more than running it.
    """
    # The tallies hold lower() of the name and tag, computed by the database on insert.
    tally = ImageTally if searched else SeverityTally
    total = (select(func.coalesce(func.sum(tally.host_images), 0).label("total")).where(
        *_filters(tally, searched and (ImageTally.name_lower, ImageTally.tag_lower), by_org, masked)))
    filters = _filters(HostImage, searched and (func.lower(HostImage.image_name),
                                                func.lower(HostImage.image_tag)), by_org, masked)
    newest = (HostImage.last_scanned.desc(), HostImage.id.desc())
    oldest = (HostImage.last_scanned, HostImage.id)

    def page(order, *extra):
        ids = (select(HostImage.id).where(*filters).order_by(*order)
               .offset(bindparam("offset")).limit(bindparam("limit")).subquery())
        return (select(*_LIST_COLUMNS, *extra).select_from(ids)
                .join(HostImage, HostImage.id == ids.c.id).join(Host, Host.id == HostImage.host_id)
                .order_by(*newest))

    return total, page(newest, total.scalar_subquery().label("total")), page(newest), page(oldest)


def _visible_org(user, organization_id):
    """The one organization the listing is limited to, or None for all (admins)."""
    if user.is_admin:
        return organization_id
    if organization_id is not None and organization_id != user.organization_id:
        raise Forbidden()
    return user.organization_id


def list_images(user, severity=None, search=None, organization_id=None, page=1, per_page=25):
    """One page of host images, newest scan first, and the true total.

    The total is a sum over tallies the ingest keeps (``severity_tallies``, or
    ``image_tallies`` for a search), not a count over the host images. A
    page's ids come from the listing index alone (``severity_mask`` is in
    it). A shallow page and its total are one statement; a deep page is read
    from whichever end of the index is nearer, so no page walks more than
    half of it.
    """
    org = _visible_org(user, organization_id)
    params = {"org": org,
              "mask": sum(SEVERITY_BITS[name] for name in severity) if severity else 0,
              "pattern": f"%{escape_like(search.lower())}%" if search else None}
    total_stmt, shallow, deep, deep_from_oldest = _statements(
        org is not None, bool(params["mask"]), bool(params["pattern"]))
    connection = db.session.connection()
    offset = (page - 1) * per_page
    if offset <= _SHALLOW:
        rows = connection.execute(shallow, dict(params, offset=offset, limit=per_page)).all()
        if rows:
            return rows, rows[0].total
        return [], connection.execute(total_stmt, params).scalar_one()
    total = connection.execute(total_stmt, params).scalar_one()
    if offset >= total:
        return [], total
    wanted = min(per_page, total - offset)
    if total - offset < offset + wanted:
        params.update(offset=total - offset - wanted, limit=wanted)
        return connection.execute(deep_from_oldest, params).all(), total
    return connection.execute(deep, dict(params, offset=offset, limit=wanted)).all(), total


_DETAIL_COLUMNS = (
    HostImage.id, HostImage.image_name, HostImage.image_tag, HostImage.image_id,
    HostImage.image_digest, Host.hostname, HostImage.organization_id, HostImage.last_scanned,
    HostImage.scanner, HostImage.scanner_version, HostImage.finding_set_id,
    HostImage.critical, HostImage.high, HostImage.medium, HostImage.low, HostImage.unknown,
)
_FINDING_KEYS = ("cve_id", "package_name", "installed_version", "fixed_version", "severity",
                 "title", "description", "target", "pkg_path")


def get_image(user, image_id):
    """The host image ``image_id`` (a row, with its ``hostname``) if ``user`` may see it, else None."""
    stmt = (select(*_DETAIL_COLUMNS).join(Host, Host.id == HostImage.host_id)
            .where(HostImage.id == image_id))
    org = _visible_org(user, None)
    if org is not None:
        stmt = stmt.where(HostImage.organization_id == org)
    return db.session.execute(stmt).first()


def findings_of(finding_set_id):
    """A finding set's rows as dicts, in detail order (stored sorted by position).

    Read with the driver's cursor: for a thousand findings, building
    SQLAlchemy rows and then dicts from them costs more than the query.
    """
    connection = db.session.connection()
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        cursor.execute(f"SELECT {', '.join(_FINDING_KEYS)} FROM findings "
                       f"WHERE finding_set_id = {marker} ORDER BY position", (finding_set_id,))
        rows = cursor.fetchall()
    finally:
        cursor.close()
    keys = _FINDING_KEYS
    return [dict(zip(keys, row, strict=True)) for row in rows]
