"""Management CLI: organizations, users, API keys and tokens.

Each ``create`` prints the one value asked for, alone on stdout.
"""
import sys

import click
from flask import Flask
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from .auth import hash_secret, issue_token, new_secret
from .extensions import db
from .models import ApiKey, Organization, User, utcnow

KNOWN_PERMISSIONS = {"agent"}


def _org(name):
    org = db.session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        raise click.ClickException(f"No organization named {name!r}.")
    return org


def register_cli(app: Flask):
    orgs = app.cli.group("orgs", help="Manage organizations.")(lambda: None)
    users = app.cli.group("users", help="Manage users.")(lambda: None)
    api_keys = app.cli.group("api-keys", help="Manage agent API keys.")(lambda: None)
    tokens = app.cli.group("tokens", help="Issue bearer tokens.")(lambda: None)

    @orgs.command("create")
    @click.argument("name")
    def create_org(name):
        """Create an organization; prints its id."""
        name = name.strip()
        if not name or len(name) > 120:
            raise click.ClickException("The name must be 1 to 120 characters.")
        if db.session.scalar(select(Organization).where(Organization.name == name)):
            raise click.ClickException(f"An organization named {name!r} exists already.")
        org = Organization(name=name)
        db.session.add(org)
        db.session.commit()
        click.echo(org.id)

    @users.command("create")
    @click.argument("username")
    @click.option("--org", "org_name", required=True, help="The user's organization.")
    @click.option("--admin", is_flag=True, help="May see every organization.")
    @click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
    def create_user(username, org_name, admin, password_stdin):
        """Create a user; prints its id."""
        if not password_stdin:
            raise click.ClickException("Pass the password on stdin with --password-stdin.")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("The password read from stdin is empty.")
        if not username or len(username) > 120:
            raise click.ClickException("The username must be 1 to 120 characters.")
        if db.session.scalar(select(User).where(User.username == username)):
            raise click.ClickException(f"A user named {username!r} exists already.")
        user = User(username=username, password_hash=generate_password_hash(password),
                    organization_id=_org(org_name).id, is_admin=admin)
        db.session.add(user)
        db.session.commit()
        click.echo(user.id)

    @api_keys.command("create")
    @click.option("--org", "org_name", required=True, help="The key's organization.")
    @click.option("--name", "label", required=True, help="A label for the key.")
    @click.option("--permissions", default="agent", show_default=True,
                  help="Comma-separated permissions; '' gives none.")
    def create_api_key(org_name, label, permissions):
        """Create an API key; prints the key (shown once, stored hashed)."""
        perms = sorted({p.strip() for p in permissions.split(",") if p.strip()})
        unknown = set(perms) - KNOWN_PERMISSIONS
        if unknown:
            raise click.ClickException(f"Unknown permission(s): {', '.join(sorted(unknown))}.")
        value = new_secret("csk_")
        db.session.add(ApiKey(organization_id=_org(org_name).id, name=label,
                              key_hash=hash_secret(value), permissions=",".join(perms)))
        db.session.commit()
        click.echo(value)

    @api_keys.command("list")
    @click.option("--org", "org_name", default=None, help="Only this organization's keys.")
    def list_api_keys(org_name):
        """List keys: id, organization, name, permissions, created, revoked (never the key)."""
        stmt = select(ApiKey, Organization.name).join(Organization).order_by(ApiKey.id)
        if org_name is not None:
            stmt = stmt.where(ApiKey.organization_id == _org(org_name).id)
        for key, org in db.session.execute(stmt):
            revoked = key.revoked_at.isoformat() if key.revoked_at else "-"
            click.echo(f"{key.id}\t{org}\t{key.name}\t{key.permissions or '-'}\t"
                       f"{key.created_at.isoformat()}\t{revoked}")

    @api_keys.command("revoke")
    @click.argument("key_id", type=int)
    def revoke_api_key(key_id):
        """Revoke a key by its id (from `api-keys list`); it stops working at once."""
        key = db.session.get(ApiKey, key_id)
        if key is None:
            raise click.ClickException(f"No API key with id {key_id}.")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            db.session.commit()
        click.echo(key.id)

    @tokens.command("create")
    @click.argument("username")
    def create_token(username):
        """Issue a bearer token for a user; prints it."""
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            raise click.ClickException(f"No user named {username!r}.")
        value, _ = issue_token(user)
        db.session.commit()
        click.echo(value)
