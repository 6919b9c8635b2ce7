"""Marshmallow schemas: the submission envelope, query strings and responses."""
import re

from flask import current_app, has_app_context
from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
)

from .trivy import SEVERITY_NAMES, unwrap

# C0, DEL and C1: every character of Unicode category Cc.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _no_control(value):
    if _CONTROL.search(value):
        raise ValidationError("Must not contain control characters.")


class ImageEntrySchema(Schema):
    """One image of a submission; ``trivy_output`` is the agents' ``scan_results``."""

    class Meta:
        unknown = EXCLUDE

    image_name = fields.String(allow_none=True, load_default=None, validate=_no_control)
    image_tag = fields.String(allow_none=True, load_default=None, validate=_no_control)
    image_id = fields.String(allow_none=True, load_default=None, validate=_no_control)
    scan_results = fields.Raw(allow_none=True, metadata={
        "description": "The Trivy JSON report: schema 2, a legacy list, or null."})
    trivy_output = fields.Raw(allow_none=True, metadata={
        "description": "Synonym of scan_results, as the shipped agents send it."})

    @pre_load
    def _require_report(self, data, **kwargs):
        if isinstance(data, dict) and "scan_results" not in data and "trivy_output" not in data:
            raise ValidationError(
                "Missing scan_results: send the Trivy report, or null for a scan that found nothing.",
                "scan_results")
        return data

    @post_load
    def _report(self, data, **kwargs):
        key = "scan_results" if "scan_results" in data else "trivy_output"
        data["report_key"] = key
        data["report"] = data.pop(key, None)
        data.pop("trivy_output", None)
        return data


class SubmissionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    hostname = fields.String(required=True, validate=[_no_control])
    images = fields.List(fields.Nested(ImageEntrySchema), required=True)
    agent_id = fields.String(allow_none=True, load_default=None,
                             validate=[validate.Length(max=255), _no_control])
    scanner = fields.String(allow_none=True, load_default=None,
                            validate=[validate.Length(max=64), _no_control])
    scanner_version = fields.String(allow_none=True, load_default=None,
                                    validate=[validate.Length(max=64), _no_control])

    @pre_load
    def _unwrap_lists(self, data, **kwargs):
        if isinstance(data, dict) and "images" in data:
            data = dict(data, images=unwrap(data["images"]))
            _check_image_count(data["images"])
        return data

    @validates("hostname")
    def _hostname(self, value, **kwargs):
        value = value.strip()
        if not value:
            raise ValidationError("Must not be empty.")
        if len(value) > 253:
            raise ValidationError("Must be at most 253 characters.")

    @post_load
    def _normalize(self, data, **kwargs):
        data["hostname"] = data["hostname"].strip().lower()
        return data


def _check_image_count(images):
    """MAX_IMAGES_PER_REQUEST, checked before any entry is validated."""
    limit = current_app.config.get("MAX_IMAGES_PER_REQUEST") if has_app_context() else None
    if limit is not None and isinstance(images, list) and len(images) > limit:
        raise ValidationError(f"Too many images in one request: {len(images)} (the limit is "
                              f"{limit}); split the submission.", "images")


class SubmissionResultSchema(Schema):
    status = fields.String(metadata={"example": "accepted"})
    images_processed = fields.Integer()
    vulnerabilities_found = fields.Integer()
    hostname = fields.String()


def _severities(value):
    names = [part.strip().lower() for part in value.split(",")]
    bad = [n for n in names if n not in SEVERITY_NAMES]
    if bad or not names:
        raise ValidationError(
            f"Unknown severity {', '.join(repr(b) for b in bad) or repr(value)}; "
            f"use one or more of {', '.join(SEVERITY_NAMES)}, comma-separated.")


class ListQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    severity = fields.String(load_default=None, validate=_severities, metadata={
        "description": "One or more of critical, high, medium, low, unknown, comma-separated."})
    search = fields.String(load_default=None, validate=[validate.Length(max=256), _no_control], metadata={
        "description": "Case-insensitive substring of the image name or tag."})
    organization_id = fields.Integer(load_default=None, strict=False,
                                     validate=validate.Range(min=1, max=2**31 - 1))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=2**31 - 1))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))

    @post_load
    def _split(self, data, **kwargs):
        if data["severity"]:
            data["severity"] = sorted({p.strip().lower() for p in data["severity"].split(",")})
        return data


class CountsSchema(Schema):
    critical = fields.Integer()
    high = fields.Integer()
    medium = fields.Integer()
    low = fields.Integer()
    unknown = fields.Integer()


class ContainerSchema(Schema):
    id = fields.Integer()
    image_name = fields.String()
    image_tag = fields.String(allow_none=True)
    image_id = fields.String(allow_none=True)
    hostname = fields.String()
    organization_id = fields.Integer()
    last_scanned = fields.String(metadata={"format": "date-time"})
    vulnerability_count = fields.Nested(CountsSchema)


class ContainerPageSchema(Schema):
    items = fields.List(fields.Nested(ContainerSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class VulnerabilitySchema(Schema):
    cve_id = fields.String()
    package_name = fields.String()
    installed_version = fields.String()
    fixed_version = fields.String(allow_none=True)
    severity = fields.String(metadata={"enum": [s.upper() for s in SEVERITY_NAMES]})
    title = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    target = fields.String()
    pkg_path = fields.String(allow_none=True)


class ContainerDetailSchema(ContainerSchema):
    scanner = fields.String(allow_none=True)
    scanner_version = fields.String(allow_none=True)
    image_digest = fields.String(allow_none=True)
    vulnerabilities = fields.List(fields.Nested(VulnerabilitySchema))


class TokenSchema(Schema):
    token = fields.String()
    expires_at = fields.String(metadata={"format": "date-time"})


class ErrorSchema(Schema):
    error = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


submission_schema = SubmissionSchema()
list_query_schema = ListQuerySchema()
