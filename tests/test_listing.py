"""GET /api/containers: scoping, filters, pagination, order, validation."""
import pytest
from conftest import bearer, submit
from sqlalchemy import update

from app.extensions import db
from app.models import HostImage


def vulns(**counts):
    out = []
    for severity, n in counts.items():
        out += [{"VulnerabilityID": f"CVE-{severity}-{i}", "PkgName": "p", "InstalledVersion": "1",
                 "Severity": severity.upper()} for i in range(n)]
    return {"Results": [{"Target": "t", "Vulnerabilities": out}]}


def post(client, key, host, *images):
    body = {"hostname": host, "images": [{"image_name": n, "scan_results": r} for n, r in images]}
    r = submit(client, key, body)
    assert r.status_code == 200, r.get_json()


def listing(client, token, **params):
    return client.get("/api/containers", headers=bearer(token), query_string=params)


@pytest.fixture
def fleet(client, org_a, org_b):
    post(client, org_a["key"], "web-1", ("nginx:1.25", vulns(high=3, medium=7, low=2)),
         ("redis:7", vulns(critical=1)), ("my_app:v100%", vulns(unknown=1)))
    post(client, org_a["key"], "web-2", ("nginx:1.25", vulns(high=3, medium=7, low=2)),
         ("postgres:16", None))
    post(client, org_b["key"], "db-9", ("secret-b:1", vulns(critical=2)))
    return org_a, org_b


def names(response):
    return sorted((i["hostname"], i["image_name"]) for i in response.get_json()["items"])


def test_user_sees_only_own_organization(client, fleet):
    org_a, org_b = fleet
    r = listing(client, org_a["token"])
    assert r.status_code == 200
    body = r.get_json()
    assert body["total"] == 5 and body["page"] == 1 and body["per_page"] == 25
    assert "secret-b" not in r.get_data(as_text=True)
    assert listing(client, org_b["token"]).get_json()["total"] == 1


def test_item_shape(client, fleet):
    item = listing(client, fleet[0]["token"], search="redis").get_json()["items"][0]
    assert set(item) == {"id", "image_name", "image_tag", "image_id", "hostname", "organization_id",
                         "last_scanned", "vulnerability_count"}
    assert item["vulnerability_count"] == {"critical": 1, "high": 0, "medium": 0, "low": 0, "unknown": 0}
    assert item["organization_id"] == fleet[0]["org"].id
    assert item["last_scanned"].endswith("Z") and item["last_scanned"][10] == "T"


def test_severity_filter_any_of(client, fleet):
    token = fleet[0]["token"]
    assert names(listing(client, token, severity="critical")) == [("web-1", "redis")]
    assert names(listing(client, token, severity="High,CRITICAL")) == [
        ("web-1", "nginx"), ("web-1", "redis"), ("web-2", "nginx")]
    assert names(listing(client, token, severity="unknown")) == [("web-1", "my_app")]
    assert listing(client, token, severity="low, medium").get_json()["total"] == 2


@pytest.mark.parametrize("value", ["severe", "", "high,,", "critical;high", "HIGHEST"])
def test_severity_invalid_is_400(client, fleet, value):
    r = listing(client, fleet[0]["token"], severity=value)
    assert r.status_code == 400
    assert r.get_json()["error"] == "bad_request" and "severity" in r.get_json()["details"]


def test_search_name_or_tag_case_insensitive(client, fleet):
    token = fleet[0]["token"]
    assert names(listing(client, token, search="NGIN")) == [("web-1", "nginx"), ("web-2", "nginx")]
    assert names(listing(client, token, search="1.25")) == [("web-1", "nginx"), ("web-2", "nginx")]
    assert names(listing(client, token, search="16")) == [("web-2", "postgres")]


def test_search_wildcards_are_literal(client, fleet):
    token = fleet[0]["token"]
    assert names(listing(client, token, search="_")) == [("web-1", "my_app")]
    assert names(listing(client, token, search="%")) == [("web-1", "my_app")]
    assert listing(client, token, search="y_a").get_json()["total"] == 1
    assert listing(client, token, search="m%p").get_json()["total"] == 0
    assert listing(client, token, search="\\").get_json()["total"] == 0


def test_pagination_and_true_total(client, fleet):
    token = fleet[0]["token"]
    seen = []
    for page in (1, 2, 3):
        body = listing(client, token, per_page=2, page=page).get_json()
        assert body["total"] == 5 and body["per_page"] == 2 and body["page"] == page
        seen += [i["id"] for i in body["items"]]
    assert len(seen) == 5 and len(set(seen)) == 5
    past = listing(client, token, per_page=2, page=9).get_json()
    assert past["items"] == [] and past["total"] == 5


@pytest.mark.parametrize("params", [{"page": 0}, {"page": -1}, {"page": "x"}, {"per_page": 0},
                                    {"per_page": 101}, {"per_page": "1.5"}, {"organization_id": "abc"},
                                    {"page": "99999999999999999999"}])
def test_bad_paging_is_400(client, fleet, params):
    r = listing(client, fleet[0]["token"], **params)
    assert r.status_code == 400
    assert r.get_json()["error"] == "bad_request"
    assert set(params) <= set(r.get_json()["details"])


def test_order_newest_first_then_highest_id(client, fleet):
    token = fleet[0]["token"]
    ids = [i["id"] for i in listing(client, token).get_json()["items"]]
    # all rows of one request share last_scanned: ties break on id, highest first
    db.session.execute(update(HostImage).values(last_scanned=db.func.current_timestamp()))
    db.session.commit()
    same_time = [i["id"] for i in listing(client, token).get_json()["items"]]
    assert same_time == sorted(same_time, reverse=True)
    assert sorted(ids) == sorted(same_time)
    web2 = {i["id"] for i in listing(client, token, search="postgres").get_json()["items"]}
    post(client, fleet[0]["key"], "web-3", ("zzz:1", None))
    assert listing(client, token).get_json()["items"][0]["image_name"] == "zzz"
    assert web2


def test_admin_sees_all_and_can_narrow(client, fleet, factory):
    org_a, org_b = fleet
    admin = factory.user(org_a["org"], "root", admin=True)
    token = factory.token(admin)
    assert listing(client, token).get_json()["total"] == 6
    narrowed = listing(client, token, organization_id=org_b["org"].id).get_json()
    assert narrowed["total"] == 1 and narrowed["items"][0]["image_name"] == "secret-b"


def test_non_admin_naming_other_org_is_403(client, fleet):
    org_a, org_b = fleet
    r = listing(client, org_a["token"], organization_id=org_b["org"].id)
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert listing(client, org_a["token"], organization_id=org_a["org"].id).get_json()["total"] == 5


def test_listing_requires_bearer(client, fleet):
    r = client.get("/api/containers")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/containers", headers={"X-API-Key": fleet[0]["key"]}).status_code == 401
