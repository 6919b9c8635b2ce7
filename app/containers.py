"""Containers blueprint: list and inspect host images."""
from datetime import timezone

from flask import Blueprint, current_app, request

from . import queries
from .auth import token_auth
from .errors import APIError
from .extensions import limiter
from .models import SEVERITIES
from .schemas import list_query_schema

bp = Blueprint("containers", __name__, url_prefix="/api/containers")

_MAX_ID = 2**31 - 1


def _user_limit():
    return current_app.config["USER_RATE_LIMIT"]


def _user_limit_key():
    return f"user:{token_auth.current_user().id}"


def iso(value):
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item(row):
    return {
        "id": row.id, "image_name": row.image_name, "image_tag": row.image_tag,
        "image_id": row.image_id, "hostname": row.hostname,
        "organization_id": row.organization_id, "last_scanned": iso(row.last_scanned),
        "vulnerability_count": {name: getattr(row, name) for name in SEVERITIES},
    }


@bp.get("")
@token_auth.login_required
@limiter.limit(_user_limit, key_func=_user_limit_key)
def list_containers():
    """List the host images the user may see."""
    args = list_query_schema.load(request.args.to_dict())
    try:
        rows, total = queries.list_images(token_auth.current_user(), **args)
    except queries.Forbidden:
        raise APIError(403, "You may not view another organization's images.") from None
    return {"items": [_item(row) for row in rows], "total": total,
            "page": args["page"], "per_page": args["per_page"]}


@bp.get("/<int:image_id>")
@token_auth.login_required
@limiter.limit(_user_limit, key_func=_user_limit_key)
def get_container(image_id):
    """One host image with its findings."""
    image = queries.get_image(token_auth.current_user(), image_id) if image_id <= _MAX_ID else None
    if image is None:
        raise APIError(404, f"Container image {image_id} not found.")
    detail = _item(image)
    detail.update(image_digest=image.image_digest, scanner=image.scanner,
                  scanner_version=image.scanner_version,
                  vulnerabilities=queries.findings_of(image.finding_set_id))
    return detail
