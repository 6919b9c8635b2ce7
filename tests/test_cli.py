"""The management CLI: each create prints one value on stdout."""
from conftest import bearer, submit
from sqlalchemy import select

from app.extensions import db
from app.models import ApiKey, Organization, User


def test_full_setup_with_cli(runner, client):
    org = runner.invoke(args=["orgs", "create", "acme"])
    assert org.exit_code == 0 and org.output.strip().isdigit()
    user = runner.invoke(args=["users", "create", "ann", "--org", "acme", "--password-stdin"],
                         input="s3cret\n")
    assert user.exit_code == 0 and user.output.strip().isdigit()
    key = runner.invoke(args=["api-keys", "create", "--org", "acme", "--name", "fleet"])
    assert key.exit_code == 0 and len(key.output.strip().splitlines()) == 1
    token = runner.invoke(args=["tokens", "create", "ann"])
    assert token.exit_code == 0
    r = submit(client, key.output.strip(), {"hostname": "h", "images": [{"image_name": "a", "scan_results": None}]})
    assert r.status_code == 200
    listing = client.get("/api/containers", headers=bearer(token.output.strip())).get_json()
    assert listing["total"] == 1 and listing["items"][0]["organization_id"] == int(org.output)
    stored = db.session.scalar(select(User).where(User.username == "ann"))
    assert stored.organization_id == int(org.output) and not stored.is_admin
    assert stored.password_hash != "s3cret"


def test_admin_flag_and_permissions(runner):
    runner.invoke(args=["orgs", "create", "acme"])
    r = runner.invoke(args=["users", "create", "root", "--org", "acme", "--admin", "--password-stdin"],
                      input="pw\n")
    assert r.exit_code == 0
    assert db.session.scalar(select(User.is_admin).where(User.username == "root")) is True
    r = runner.invoke(args=["api-keys", "create", "--org", "acme", "--name", "ro", "--permissions", ""])
    assert r.exit_code == 0
    assert db.session.scalar(select(ApiKey.permissions).where(ApiKey.name == "ro")) == ""
    r = runner.invoke(args=["api-keys", "create", "--org", "acme", "--name", "x", "--permissions", "root"])
    assert r.exit_code != 0 and "Unknown permission" in r.output


def test_errors_are_clear(runner):
    assert "No organization" in runner.invoke(args=["api-keys", "create", "--org", "nope", "--name", "x"]).output
    runner.invoke(args=["orgs", "create", "acme"])
    dup = runner.invoke(args=["orgs", "create", "acme"])
    assert dup.exit_code != 0 and "exists" in dup.output
    assert db.session.scalar(select(db.func.count()).select_from(Organization)) == 1
    assert runner.invoke(args=["tokens", "create", "ghost"]).exit_code != 0
    empty = runner.invoke(args=["users", "create", "u", "--org", "acme", "--password-stdin"], input="\n")
    assert empty.exit_code != 0


def test_list_and_revoke_api_keys(runner, client):
    runner.invoke(args=["orgs", "create", "acme"])
    runner.invoke(args=["orgs", "create", "other"])
    key = runner.invoke(args=["api-keys", "create", "--org", "acme", "--name", "fleet"]).output.strip()
    runner.invoke(args=["api-keys", "create", "--org", "other", "--name", "theirs"])
    listed = runner.invoke(args=["api-keys", "list", "--org", "acme"])
    assert listed.exit_code == 0
    rows = [line.split("\t") for line in listed.output.strip().splitlines()]
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [("acme", "fleet", "agent", "-")]
    assert key not in listed.output
    assert len(runner.invoke(args=["api-keys", "list"]).output.strip().splitlines()) == 2
    body = {"hostname": "h", "images": []}
    assert submit(client, key, body).status_code == 200
    revoked = runner.invoke(args=["api-keys", "revoke", rows[0][0]])
    assert revoked.exit_code == 0 and revoked.output.strip() == rows[0][0]
    assert submit(client, key, body).status_code == 401
    assert runner.invoke(args=["api-keys", "list", "--org", "acme"]).output.split("\t")[5].strip() != "-"
    assert runner.invoke(args=["api-keys", "revoke", "9999"]).exit_code != 0


def test_delete_token_is_empty_204(client, org_a):
    r = client.delete("/api/auth/token", headers=bearer(org_a["token"]))
    assert r.status_code == 204 and r.data == b"" and "Content-Type" not in r.headers
