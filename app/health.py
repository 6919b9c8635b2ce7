"""Liveness and readiness probes: unauthenticated, never rate limited."""
from flask import Blueprint
from sqlalchemy import text

from .errors import error_response
from .extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """The database answers."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means not ready
        db.session.rollback()
        return error_response(503, "The database is unavailable.", headers={"Retry-After": "5"})
    return {"status": "ready"}
