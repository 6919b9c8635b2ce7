"""Ingest semantics of CONTRACT.md: identity, rescans, sharing, atomicity, response."""
from conftest import bearer, load_sample, submit
from sqlalchemy import func, select

from app.extensions import db
from app.models import Finding, FindingSet, Host, HostImage

ALPINE = "v2_trivy-golden_alpine-3.10_newest-fields.json"      # 4 medium
JUICE = "v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json"  # 236


def vuln(cve, pkg="openssl", version="1.0", severity="HIGH", fixed=None, **extra):
    v = {"VulnerabilityID": cve, "PkgName": pkg, "InstalledVersion": version, "Severity": severity}
    if fixed is not None:
        v["FixedVersion"] = fixed
    v.update(extra)
    return v


def report(*vulns, target="img (debian 12)"):
    return {"SchemaVersion": 2, "Results": [{"Target": target, "Class": "os-pkgs",
                                             "Vulnerabilities": list(vulns)}]}


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def test_page_example_body(client, org_a):
    body = {"hostname": "server-01", "images": [{
        "image_name": "nginx:1.25", "image_id": "sha256:abc123",
        "scan_results": report(vuln("CVE-2024-1234", fixed="3.0.13-1~deb12u1",
                                    Title="OpenSSL vulnerability", Description="..."),
                               target="nginx:1.25 (debian 12.4)")}]}
    r = submit(client, org_a["key"], body)
    assert r.status_code == 200
    assert r.get_json() == {"status": "accepted", "images_processed": 1,
                            "vulnerabilities_found": 1, "hostname": "server-01"}
    item = client.get("/api/containers", headers=bearer(org_a["token"])).get_json()["items"][0]
    assert (item["image_name"], item["image_tag"], item["image_id"]) == ("nginx", "1.25", "sha256:abc123")
    assert item["vulnerability_count"] == {"critical": 0, "high": 1, "medium": 0, "low": 0, "unknown": 0}


def test_response_counts_every_entry(client, org_a):
    body = {"hostname": "h", "images": [
        {"image_name": "a:1", "scan_results": load_sample(ALPINE)},
        {"image_name": "b:1", "scan_results": load_sample(JUICE)},
        {"image_name": "c:1", "scan_results": None}]}
    r = submit(client, org_a["key"], body)
    assert r.get_json()["images_processed"] == 3
    assert r.get_json()["vulnerabilities_found"] == 240
    assert count(HostImage) == 3


def test_hostname_trimmed_and_lowercased(client, org_a):
    r = submit(client, org_a["key"], {"hostname": "  Web-01.Example.COM ", "images": []})
    assert r.get_json()["hostname"] == "web-01.example.com"
    assert db.session.scalar(select(Host.hostname)) == "web-01.example.com"


def test_rescan_replaces_findings_and_keeps_one_row(client, org_a):
    first = {"hostname": "h", "images": [{"image_name": "app:1", "scan_results":
                                          report(vuln("CVE-1"), vuln("CVE-2", severity="LOW"))}]}
    second = {"hostname": "H", "images": [{"image_name": "app:1", "scan_results":
                                           report(vuln("CVE-3", severity="CRITICAL"))}]}
    assert submit(client, org_a["key"], first).status_code == 200
    assert submit(client, org_a["key"], second).status_code == 200
    assert count(HostImage) == 1
    page = client.get("/api/containers", headers=bearer(org_a["token"])).get_json()
    detail = client.get(f"/api/containers/{page['items'][0]['id']}",
                        headers=bearer(org_a["token"])).get_json()
    assert [v["cve_id"] for v in detail["vulnerabilities"]] == ["CVE-3"]
    assert detail["vulnerability_count"]["critical"] == 1 and detail["vulnerability_count"]["high"] == 0


def test_same_host_image_twice_in_one_request_last_wins(client, org_a):
    body = {"hostname": "h", "images": [
        {"image_name": "app:1", "scan_results": report(vuln("CVE-OLD"))},
        {"image_name": "app", "image_tag": "1", "scan_results": report(vuln("CVE-NEW"), vuln("CVE-X"))}]}
    r = submit(client, org_a["key"], body)
    assert r.get_json()["images_processed"] == 2
    assert r.get_json()["vulnerabilities_found"] == 3
    assert count(HostImage) == 1
    assert db.session.scalar(select(HostImage.high)) == 2


def test_identity_tag_versus_digest(client, org_a):
    digest = "sha256:" + "a" * 64
    images = [{"image_name": n, "scan_results": None} for n in
              ("app", "app:latest", "app:2", f"app@{digest}", f"app:2@{digest}",
               "registry.example.com:5000/team/app")]
    submit(client, org_a["key"], {"hostname": "h", "images": images})
    rows = db.session.execute(select(HostImage.image_name, HostImage.image_tag, HostImage.image_id)
                              .order_by(HostImage.image_name, HostImage.ref_key)).all()
    assert [tuple(r) for r in rows] == [
        ("app", "2", digest),           # app:2 then app:2@digest: one identity, the last wins
        ("app", None, digest),          # digest only: no tag, and the digest is the id
        ("app", "latest", None),        # "app" and "app:latest" are one image
        ("registry.example.com:5000/team/app", "latest", None),
    ]


def test_finding_sets_shared_across_hosts_and_rescans(client, org_a):
    doc = load_sample(JUICE)
    for host in ("h1", "h2", "h3"):
        submit(client, org_a["key"], {"hostname": host, "images": [{"image_name": "js:1", "scan_results": doc}]})
    doc["CreatedAt"] = "2030-01-01T00:00:00Z"
    submit(client, org_a["key"], {"hostname": "h1", "images": [{"image_name": "js:1", "scan_results": doc}]})
    assert count(HostImage) == 3
    assert count(FindingSet) == 1
    assert count(Finding) == 236


def test_findings_merge_highest_severity_and_fixed_version(client, org_a):
    doc = report(vuln("CVE-1", severity="LOW"), vuln("CVE-1", severity="high", fixed="1.1"),
                 vuln("CVE-1", severity="MEDIUM"), vuln("CVE-1", pkg="libssl"),
                 vuln("CVE-1", severity="bogus", PkgPath="/x.jar"))
    r = submit(client, org_a["key"], {"hostname": "h", "images": [{"image_name": "a", "scan_results": doc}]})
    assert r.get_json()["vulnerabilities_found"] == 3
    rows = db.session.execute(select(Finding.package_name, Finding.severity, Finding.fixed_version,
                                     Finding.pkg_path).order_by(Finding.position)).all()
    assert [tuple(r) for r in rows] == [("libssl", "HIGH", None, None), ("openssl", "HIGH", "1.1", None),
                                        ("openssl", "UNKNOWN", None, "/x.jar")]


def test_malformed_image_anywhere_stores_nothing(client, org_a):
    body = {"hostname": "h", "images": [
        {"image_name": "good:1", "scan_results": report(vuln("CVE-1"))},
        {"image_name": "bad:1", "scan_results": report({"VulnerabilityID": 5, "PkgName": "x"})}]}
    r = submit(client, org_a["key"], body)
    assert r.status_code == 400
    assert "images[1].scan_results.Results[0].Vulnerabilities[0].VulnerabilityID" in r.get_json()["message"]
    assert (count(Host), count(HostImage), count(FindingSet), count(Finding)) == (0, 0, 0, 0)


def test_submissions_land_in_the_keys_organization(client, org_a, org_b):
    submit(client, org_a["key"], {"hostname": "h", "images": [{"image_name": "a", "scan_results": None}]})
    submit(client, org_b["key"], {"hostname": "h", "images": [{"image_name": "a", "scan_results": None}]})
    orgs = sorted(db.session.scalars(select(HostImage.organization_id)).all())
    assert orgs == sorted([org_a["org"].id, org_b["org"].id])
    assert count(Host) == 2


def test_bare_report_with_hostname_query(client, org_a):
    doc = load_sample(JUICE)
    r = submit(client, org_a["key"], doc, query_string={"hostname": "Web-1"})
    assert r.status_code == 200
    assert r.get_json() == {"status": "accepted", "images_processed": 1,
                            "vulnerabilities_found": 236, "hostname": "web-1"}
    row = db.session.execute(select(HostImage.image_name, HostImage.image_tag)).one()
    assert tuple(row) == ("bkimminich/juice-shop", "v10.2.0")


def test_bare_report_without_hostname_is_400(client, org_a):
    r = submit(client, org_a["key"], load_sample(JUICE))
    assert r.status_code == 400
    assert "hostname" in r.get_json()["message"]
    assert count(Host) == 0
