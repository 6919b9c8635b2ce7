"""Every error, whatever raised it, is the one JSON shape."""
import pytest
from conftest import bearer, make_app


def assert_json_error(r, status, error):
    assert r.status_code == status
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert body["error"] == error and isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in r.get_data(as_text=True)


def test_unknown_url_is_json_404(client):
    assert_json_error(client.get("/nope"), 404, "not_found")
    assert_json_error(client.get("/api/containers/1/extra"), 404, "not_found")


def test_wrong_method_is_json_405_with_allow(client):
    r = client.get("/api/agent/container-scan")
    assert_json_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]
    assert_json_error(client.put("/api/containers"), 405, "method_not_allowed")


def test_body_too_large_is_json_413(_schema):
    app = make_app(MAX_CONTENT_LENGTH=1000)
    client = app.test_client()
    with app.app_context():
        from conftest import Factory, empty_tables
        empty_tables()
        f = Factory()
        key = f.key(f.org())
    r = client.post("/api/agent/container-scan", data=b"{" + b" " * 2000 + b"}",
                    headers={"X-API-Key": key})
    assert_json_error(r, 413, "payload_too_large")
    assert "1000" in r.get_json()["message"]


def test_unexpected_error_is_json_500_without_internals(app, client, org_a, monkeypatch):
    from app import queries

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(queries, "list_images", boom)
    r = client.get("/api/containers", headers=bearer(org_a["token"]))
    assert_json_error(r, 500, "internal_error")
    assert "secret internal detail" not in r.get_data(as_text=True)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2", b"{\"hostname\": }", b""])
def test_malformed_body_is_json_400(client, org_a, body):
    r = client.post("/api/agent/container-scan", data=body, headers={"X-API-Key": org_a["key"]})
    assert_json_error(r, 400, "bad_request")


def test_validation_details_use_dotted_paths(client, org_a):
    r = client.post("/api/agent/container-scan", json={"hostname": "h", "images": [{"image_name": 5, "scan_results": None}]},
                    headers={"X-API-Key": org_a["key"]})
    assert_json_error(r, 400, "bad_request")
    assert "images.0.image_name" in r.get_json()["details"]


def test_bearer_401_carries_www_authenticate(client):
    r = client.get("/api/containers/1")
    assert_json_error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
