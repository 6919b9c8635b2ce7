"""GET /api/containers/<id>: findings, order, counts, scoping."""
from conftest import bearer, load_sample, submit

JUICE = "v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json"
RANK = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3, "UNKNOWN": 4}


def first_id(client, token):
    return client.get("/api/containers", headers=bearer(token)).get_json()["items"][0]["id"]


def test_detail_of_real_report(client, org_a):
    submit(client, org_a["key"], {"hostname": "web-1", "images": [
        {"image_name": "bkimminich/juice-shop:v10.2.0", "scan_results": load_sample(JUICE)}]})
    image_id = first_id(client, org_a["token"])
    r = client.get(f"/api/containers/{image_id}", headers=bearer(org_a["token"]))
    assert r.status_code == 200
    d = r.get_json()
    assert (d["id"], d["image_name"], d["image_tag"], d["hostname"]) == (
        image_id, "bkimminich/juice-shop", "v10.2.0", "web-1")
    assert d["image_id"].startswith("sha256:21ef0dc04325")
    assert d["vulnerability_count"] == {"critical": 25, "high": 128, "medium": 67, "low": 16, "unknown": 0}
    vulns = d["vulnerabilities"]
    assert len(vulns) == 236
    keys = [(RANK[v["severity"]], v["cve_id"], v["package_name"]) for v in vulns]
    assert keys == sorted(keys)
    assert set(vulns[0]) == {"cve_id", "package_name", "installed_version", "fixed_version", "severity",
                             "title", "description", "target", "pkg_path"}
    ajv = sorted((v["installed_version"], v["pkg_path"]) for v in vulns
                 if v["cve_id"] == "CVE-2020-15366" and v["package_name"] == "ajv")
    assert [version for version, _ in ajv] == ["5.5.2", "6.12.2"]
    assert all(path for _, path in ajv)


def test_detail_fields_of_page_example(client, org_a):
    body = {"hostname": "server-01", "images": [{"image_name": "nginx:1.25", "image_id": "sha256:abc123",
            "scan_results": {"Results": [{"Target": "nginx:1.25 (debian 12.4)", "Class": "os-pkgs",
                                          "Type": "debian", "Vulnerabilities": [{
                                              "VulnerabilityID": "CVE-2024-1234", "PkgName": "openssl",
                                              "InstalledVersion": "3.0.11-1~deb12u2",
                                              "FixedVersion": "3.0.13-1~deb12u1", "Severity": "HIGH",
                                              "Title": "OpenSSL vulnerability", "Description": "..."}]}]}}]}
    submit(client, org_a["key"], body)
    d = client.get(f"/api/containers/{first_id(client, org_a['token'])}",
                   headers=bearer(org_a["token"])).get_json()
    assert d["vulnerabilities"] == [{
        "cve_id": "CVE-2024-1234", "package_name": "openssl", "installed_version": "3.0.11-1~deb12u2",
        "fixed_version": "3.0.13-1~deb12u1", "severity": "HIGH", "title": "OpenSSL vulnerability",
        "description": "...", "target": "nginx:1.25 (debian 12.4)", "pkg_path": None}]
    assert d["organization_id"] == org_a["org"].id and d["scanner"] == "trivy"


def test_other_organization_image_is_404(client, org_a, org_b):
    submit(client, org_b["key"], {"hostname": "b", "images": [{"image_name": "x", "scan_results": None}]})
    foreign = first_id(client, org_b["token"])
    r = client.get(f"/api/containers/{foreign}", headers=bearer(org_a["token"]))
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    missing = client.get("/api/containers/999999", headers=bearer(org_a["token"]))
    assert missing.status_code == 404
    assert missing.get_json()["message"].replace("999999", str(foreign)) == r.get_json()["message"]


def test_admin_sees_any_image(client, org_a, org_b, factory):
    submit(client, org_b["key"], {"hostname": "b", "images": [{"image_name": "x", "scan_results": None}]})
    admin = factory.user(org_a["org"], "root", admin=True)
    r = client.get(f"/api/containers/{first_id(client, org_b['token'])}", headers=bearer(factory.token(admin)))
    assert r.status_code == 200 and r.get_json()["hostname"] == "b"


def test_bad_ids(client, org_a):
    for path in ("/api/containers/abc", "/api/containers/-1", "/api/containers/99999999999999999999"):
        r = client.get(path, headers=bearer(org_a["token"]))
        assert r.status_code == 404, path
        assert r.get_json()["error"] == "not_found"
