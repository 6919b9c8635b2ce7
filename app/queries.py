"""Scoped, filtered, paginated reads of host images and their findings."""
from sqlalchemy import func, or_, select

from .extensions import db
from .models import Finding, Host, HostImage

_LIST_COLUMNS = (
    HostImage.id, HostImage.image_name, HostImage.image_tag, HostImage.image_id,
    Host.hostname, HostImage.organization_id, HostImage.last_scanned,
    HostImage.critical, HostImage.high, HostImage.medium, HostImage.low, HostImage.unknown,
)


class Forbidden(Exception):
    """A non-admin asked for another organization."""


def scope(stmt, user, organization_id=None):
    """Restrict ``stmt`` to what ``user`` may see."""
    if user.is_admin:
        if organization_id is not None:
            stmt = stmt.where(HostImage.organization_id == organization_id)
        return stmt
    if organization_id is not None and organization_id != user.organization_id:
        raise Forbidden()
    return stmt.where(HostImage.organization_id == user.organization_id)


def escape_like(value):
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_images(user, severity=None, search=None, organization_id=None, page=1, per_page=25):
    """One page of host images, newest scan first, and the true total."""
    conditions = scope(select(HostImage.id), user, organization_id).whereclause
    filters = [] if conditions is None else [conditions]
    if severity:
        filters.append(or_(*(getattr(HostImage, name) > 0 for name in severity)))
    if search:
        pattern = f"%{escape_like(search.lower())}%"
        filters.append(or_(func.lower(HostImage.image_name).like(pattern, escape="\\"),
                           func.lower(HostImage.image_tag).like(pattern, escape="\\")))
    total = db.session.scalar(select(func.count(HostImage.id)).where(*filters))
    rows = []
    if total and (page - 1) * per_page < total:
        rows = db.session.execute(
            select(*_LIST_COLUMNS).join(Host, Host.id == HostImage.host_id).where(*filters)
            .order_by(HostImage.last_scanned.desc(), HostImage.id.desc())
            .offset((page - 1) * per_page).limit(per_page)).all()
    return rows, total


def get_image(user, image_id):
    """The host image ``image_id`` if ``user`` may see it, else None."""
    stmt = select(HostImage).where(HostImage.id == image_id)
    image = db.session.scalar(scope(stmt, user))
    return image


def findings_of(finding_set_id):
    """A finding set's rows, in detail order (stored sorted by position)."""
    return db.session.execute(
        select(Finding.cve_id, Finding.package_name, Finding.installed_version,
               Finding.fixed_version, Finding.severity, Finding.title, Finding.description,
               Finding.target, Finding.pkg_path)
        .where(Finding.finding_set_id == finding_set_id)
        .order_by(Finding.position)).all()
