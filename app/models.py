"""Tables.

Findings are stored once per distinct scan result: a ``FindingSet`` is keyed
by a hash of its normalized findings, and every host image that carries the
same result points at it. A rescan with unchanged findings writes no finding
rows; a thousand hosts running one image store its findings once.
"""
from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

SEVERITIES = ("critical", "high", "medium", "low", "unknown")
# Bit of each severity in ``severity_mask``: set when the image has a finding of it.
SEVERITY_BITS = {name: 1 << i for i, name in enumerate(SEVERITIES)}


def severity_mask(counts):
    """The ``severity_mask`` of a {severity: count} mapping."""
    return sum(bit for name, bit in SEVERITY_BITS.items() if counts[name])


def utcnow():
    return datetime.now(timezone.utc)


class Organization(db.Model):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(db.Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(db.Model):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def permission_set(self):
        return {p for p in self.permissions.split(",") if p}


class Token(db.Model):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user: Mapped[User] = relationship()


class Host(db.Model):
    __tablename__ = "hosts"
    __table_args__ = (UniqueConstraint("organization_id", "hostname"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    hostname: Mapped[str] = mapped_column(String(253))
    agent_id: Mapped[str | None] = mapped_column(String(255))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FindingSet(db.Model):
    __tablename__ = "finding_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    finding_count: Mapped[int] = mapped_column(Integer)
    critical: Mapped[int] = mapped_column(Integer)
    high: Mapped[int] = mapped_column(Integer)
    medium: Mapped[int] = mapped_column(Integer)
    low: Mapped[int] = mapped_column(Integer)
    unknown: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReportDigest(db.Model):
    """A digest of a report's results as sent, and the finding set they parsed to.

    A rescan whose results did not change (Trivy only writes a new
    ``CreatedAt``) is matched here and not parsed again. The digest covers
    the parser's version, so a change in how reports are read never reuses
    an old answer.
    """
    __tablename__ = "report_digests"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    finding_set_id: Mapped[int] = mapped_column(ForeignKey("finding_sets.id"), index=True)


class Finding(db.Model):
    """One finding of a finding set; ``position`` keeps the detail order."""
    __tablename__ = "findings"
    __table_args__ = (Index("ix_findings_set_position", "finding_set_id", "position"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    finding_set_id: Mapped[int] = mapped_column(ForeignKey("finding_sets.id"))
    position: Mapped[int] = mapped_column(Integer)
    severity_rank: Mapped[int] = mapped_column(SmallInteger)
    cve_id: Mapped[str] = mapped_column(Text)
    package_name: Mapped[str] = mapped_column(Text)
    installed_version: Mapped[str] = mapped_column(Text)
    fixed_version: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    pkg_path: Mapped[str | None] = mapped_column(Text)


class HostImage(db.Model):
    """An image as found on one host; identity is (host, name, ref_key).

    ``ref_key`` is the tag, or ``@<digest>`` for a digest-only reference.
    The severity counts are copied from the finding set so the listing can
    filter and order without touching findings; ``severity_mask`` sums them
    up as bits (``SEVERITY_BITS``) and ends the listing indexes, so a
    severity filter is checked in the index, without reading rows it skips.
    """
    __tablename__ = "host_images"
    __table_args__ = (
        UniqueConstraint("host_id", "image_name", "ref_key"),
        Index("ix_host_images_org_listing", "organization_id", "last_scanned", "id", "severity_mask"),
        Index("ix_host_images_listing", "last_scanned", "id", "severity_mask"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    image_name: Mapped[str] = mapped_column(String(512))
    image_tag: Mapped[str | None] = mapped_column(String(256))
    ref_key: Mapped[str] = mapped_column(String(300))
    image_digest: Mapped[str | None] = mapped_column(String(160))
    image_id: Mapped[str | None] = mapped_column(String(160))
    finding_set_id: Mapped[int] = mapped_column(ForeignKey("finding_sets.id"), index=True)
    critical: Mapped[int] = mapped_column(Integer)
    high: Mapped[int] = mapped_column(Integer)
    medium: Mapped[int] = mapped_column(Integer)
    low: Mapped[int] = mapped_column(Integer)
    unknown: Mapped[int] = mapped_column(Integer)
    severity_mask: Mapped[int] = mapped_column(SmallInteger)
    scanner: Mapped[str | None] = mapped_column(String(64))
    scanner_version: Mapped[str | None] = mapped_column(String(64))
    last_scanned: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    host: Mapped[Host] = relationship(lazy="joined", innerjoin=True)


class ImageTally(db.Model):
    """How many host images an organization has per (name, tag, severity mask).

    Kept by the ingest in the same transaction as the host images, so the
    total of a search is a sum over the organization's distinct images
    instead of a count over every matching host image. ``tag_key`` is the
    tag, or '' for a digest-only image.
    """
    __tablename__ = "image_tallies"
    __table_args__ = (UniqueConstraint("organization_id", "image_name", "tag_key", "severity_mask"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    image_name: Mapped[str] = mapped_column(String(512))
    tag_key: Mapped[str] = mapped_column(String(256))
    # lower(image_name) and lower(tag_key), as the database computed them on
    # insert: a search compares them without calling lower() on every row.
    name_lower: Mapped[str] = mapped_column(String(512))
    tag_lower: Mapped[str] = mapped_column(String(256))
    severity_mask: Mapped[int] = mapped_column(SmallInteger)
    host_images: Mapped[int] = mapped_column(Integer)


class SeverityTally(db.Model):
    """How many host images an organization has per severity mask (at most 32 rows).

    The listing's ``total`` without a search: a sum over a few rows. Kept by
    the ingest with ``ImageTally``.
    """
    __tablename__ = "severity_tallies"
    __table_args__ = (UniqueConstraint("organization_id", "severity_mask"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    severity_mask: Mapped[int] = mapped_column(SmallInteger)
    host_images: Mapped[int] = mapped_column(Integer)
