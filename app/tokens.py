"""Token blueprint: exchange a password for a bearer token, and revoke it."""
from flask import Blueprint, current_app, g

from .auth import basic_auth, issue_token, token_auth
from .extensions import db, limiter
from .models import utcnow

bp = Blueprint("tokens", __name__, url_prefix="/api/auth")


def _auth_limit():
    return current_app.config["AUTH_RATE_LIMIT"]


@bp.post("/token")
@limiter.limit(_auth_limit)
@basic_auth.login_required
def new_token():
    """Issue a bearer token for HTTP Basic credentials."""
    value, expires = issue_token(basic_auth.current_user())
    db.session.commit()
    return {"token": value, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}


@bp.delete("/token")
@token_auth.login_required
def revoke_token():
    """Revoke the bearer token this request carries."""
    g.token.revoked_at = utcnow()
    db.session.commit()
    response = current_app.response_class(status=204)
    response.headers.pop("Content-Type", None)
    return response
