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


# JSON Schema of what the checks below accept, for the OpenAPI document.
_NO_CONTROL_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
_HOSTNAME_PATTERN = ("^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f]"
                     "[^\\u0000-\\u001f\\u007f-\\u009f]*$")
_REFERENCE_PATTERN = "^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+/[a-z0-9]+([._/-][a-z0-9]+)*)?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
_VULNERABILITY = {"type": "object", "required": ["VulnerabilityID", "PkgName"], "properties": {
    name: {"type": "string"} for name in ("VulnerabilityID", "PkgName", "InstalledVersion", "FixedVersion",
                                          "Severity", "Title", "Description", "PkgPath")}}
_RESULT = {"type": "object", "properties": {
    "Target": {"type": "string"}, "Class": {"type": "string"},
    "Vulnerabilities": {"type": "array", "items": _VULNERABILITY, "nullable": True}}}
TRIVY_REPORT = {
    "description": "The Trivy JSON report: schema 2 (an object with Results), a legacy list of results, "
                   "or null for a scan that found nothing. Unknown keys are ignored.",
    "nullable": True,
    "anyOf": [{"type": "object", "properties": {
        "SchemaVersion": {"type": "integer"}, "ArtifactName": {"type": "string"},
        "Results": {"type": "array", "items": _RESULT, "nullable": True}}},
        {"type": "array", "items": _RESULT}],
}


class ImageEntrySchema(Schema):
    """One image of a submission; ``trivy_output`` is the agents' ``scan_results``."""

    class Meta:
        unknown = EXCLUDE

    image_name = fields.String(allow_none=True, load_default=None, validate=_no_control, metadata={
        "description": "A Docker reference (name[:tag][@digest]); when absent the report names the image.",
        "pattern": _REFERENCE_PATTERN, "maxLength": 512})
    image_tag = fields.String(allow_none=True, load_default=None, validate=_no_control, metadata={
        "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"})
    image_id = fields.String(allow_none=True, load_default=None, validate=_no_control, metadata={
        "pattern": _NO_CONTROL_PATTERN, "maxLength": 160})
    scan_results = fields.Raw(allow_none=True, metadata=TRIVY_REPORT)
    trivy_output = fields.Raw(allow_none=True, metadata=dict(
        TRIVY_REPORT, description="Synonym of scan_results, as the shipped agents send it."))

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

    hostname = fields.String(required=True, validate=[_no_control], metadata={
        "description": "Trimmed and lowercased; 1 to 253 characters, no control characters.",
        "pattern": _HOSTNAME_PATTERN, "maxLength": 253})
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


# Response schemas: they describe what the views answer (for the OpenAPI
# document); every field is always present, hence required.


class SubmissionResultSchema(Schema):
    status = fields.String(required=True, metadata={"example": "accepted"})
    images_processed = fields.Integer(required=True)
    vulnerabilities_found = fields.Integer(required=True)
    hostname = fields.String(required=True)


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
    critical = fields.Integer(required=True)
    high = fields.Integer(required=True)
    medium = fields.Integer(required=True)
    low = fields.Integer(required=True)
    unknown = fields.Integer(required=True)


class ContainerSchema(Schema):
    id = fields.Integer(required=True)
    image_name = fields.String(required=True)
    image_tag = fields.String(required=True, allow_none=True)
    image_id = fields.String(required=True, allow_none=True)
    hostname = fields.String(required=True)
    organization_id = fields.Integer(required=True)
    last_scanned = fields.String(required=True, metadata={"format": "date-time"})
    vulnerability_count = fields.Nested(CountsSchema, required=True)


class ContainerPageSchema(Schema):
    items = fields.List(fields.Nested(ContainerSchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)


class VulnerabilitySchema(Schema):
    cve_id = fields.String(required=True)
    package_name = fields.String(required=True)
    installed_version = fields.String(required=True)
    fixed_version = fields.String(required=True, allow_none=True)
    severity = fields.String(required=True, metadata={"enum": [s.upper() for s in SEVERITY_NAMES]})
    title = fields.String(required=True, allow_none=True)
    description = fields.String(required=True, allow_none=True)
    target = fields.String(required=True)
    pkg_path = fields.String(required=True, allow_none=True)


class ContainerDetailSchema(ContainerSchema):
    scanner = fields.String(required=True, allow_none=True)
    scanner_version = fields.String(required=True, allow_none=True)
    image_digest = fields.String(required=True, allow_none=True)
    vulnerabilities = fields.List(fields.Nested(VulnerabilitySchema), required=True)


class TokenSchema(Schema):
    token = fields.String(required=True)
    expires_at = fields.String(required=True, metadata={"format": "date-time"})


class ErrorSchema(Schema):
    error = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


submission_schema = SubmissionSchema()
list_query_schema = ListQuerySchema()
