"""Finding rows store exactly what was sent, whichever write path the database takes
(COPY on PostgreSQL, executemany elsewhere); listing queries agree with the detail."""
import pytest
from conftest import bearer, submit

AWKWARD = ["plain", "comma, inside", 'quote " inside', "line\nbreak", "carriage\rreturn",
           "crlf\r\nend", "tab\tinside", "back\\slash", "\\.", "\\N", "NULL", "\u00e9t\u00e9 \u2028 \U0001f600",
           " leading and trailing ", '"', ",", "x" * 5000]


def _vuln(i, text):
    return {"VulnerabilityID": f"CVE-2024-{i:04d}", "PkgName": text, "InstalledVersion": text,
            "FixedVersion": text, "Severity": "HIGH", "Title": text, "Description": text,
            "PkgPath": text}


def _report(texts, target="img (debian 12)"):
    return {"Results": [{"Target": target, "Vulnerabilities": [_vuln(i, t) for i, t in enumerate(texts)]}]}


def _detail(client, token):
    items = client.get("/api/containers", headers=bearer(token)).get_json()["items"]
    return client.get(f"/api/containers/{items[0]['id']}", headers=bearer(token)).get_json()


def test_awkward_text_round_trips(client, org_a):
    r = submit(client, org_a["key"], {"hostname": "h1", "images": [
        {"image_name": "app:1", "scan_results": _report(AWKWARD)}]})
    assert r.status_code == 200, r.get_json()
    vulns = _detail(client, org_a["token"])["vulnerabilities"]
    by_cve = {v["cve_id"]: v for v in vulns}
    for i, text in enumerate(AWKWARD):
        v = by_cve[f"CVE-2024-{i:04d}"]
        assert (v["package_name"], v["installed_version"], v["fixed_version"], v["title"],
                v["description"], v["pkg_path"]) == (text,) * 6


def test_empty_and_missing_fields(client, org_a):
    report = {"Results": [{"Vulnerabilities": [
        {"VulnerabilityID": "CVE-1", "PkgName": "p", "InstalledVersion": "", "FixedVersion": "",
         "Title": "", "Description": "", "PkgPath": ""},
        {"VulnerabilityID": "CVE-2", "PkgName": "q"}]}]}
    assert submit(client, org_a["key"], {"hostname": "h1", "images": [
        {"image_name": "app:1", "scan_results": report}]}).status_code == 200
    vulns = _detail(client, org_a["token"])["vulnerabilities"]
    assert [(v["cve_id"], v["installed_version"], v["fixed_version"], v["title"], v["description"],
             v["target"], v["pkg_path"], v["severity"]) for v in vulns] == [
        ("CVE-1", "", None, None, None, "", None, "UNKNOWN"),
        ("CVE-2", "", None, None, None, "", None, "UNKNOWN")]


@pytest.mark.parametrize("sets", [1, 3])
def test_several_new_sets_in_one_request(client, org_a, sets):
    images = [{"image_name": f"app{n}:1", "scan_results": _report([f"pkg-{n}-{i}" for i in range(50)])}
              for n in range(sets)]
    r = submit(client, org_a["key"], {"hostname": "h1", "images": images})
    assert r.get_json()["vulnerabilities_found"] == 50 * sets
    items = client.get("/api/containers", headers=bearer(org_a["token"])).get_json()["items"]
    for item in items:
        d = client.get(f"/api/containers/{item['id']}", headers=bearer(org_a["token"])).get_json()
        n = item["image_name"][3:]
        assert [v["package_name"] for v in d["vulnerabilities"]] == [f"pkg-{n}-{i}" for i in range(50)]


def _image(name, severities):
    vulns = [{"VulnerabilityID": f"CVE-{i}", "PkgName": "p", "Severity": s} for i, s in enumerate(severities)]
    return {"image_name": name, "scan_results": {"Results": [{"Target": "t", "Vulnerabilities": vulns}]}}


def _fleet(client, key):
    """Hosts whose images change severities, tags and names across rescans."""
    shapes = [["CRITICAL"], ["HIGH", "LOW"], [], ["MEDIUM"], ["UNKNOWN", "HIGH"], ["LOW"]]
    for round_ in range(3):
        for h in range(7):
            images = [_image(f"repo{(h + i) % 4}/app:{'v' + str(i % 3) if i % 2 else 'latest'}",
                             shapes[(h + i + round_) % len(shapes)]) for i in range(h % 4 + 1)]
            if round_ == 2 and h % 3 == 0:
                images.append(_image(f"digest-only@sha256:{h:064x}", shapes[h % len(shapes)]))
            assert submit(client, key, {"hostname": f"host-{h}", "images": images}).status_code == 200


def _all_items(client, token, query):
    items, page = [], 1
    while True:
        r = client.get(f"/api/containers?per_page=100&page={page}{query}", headers=bearer(token)).get_json()
        items += r["items"]
        if len(r["items"]) < 100:
            return items, r["total"]
        page += 1


@pytest.mark.parametrize("shallow", [1000, 0])
@pytest.mark.parametrize("query", ["", "&severity=critical", "&severity=high,low", "&severity=unknown",
                                   "&search=repo1", "&search=V1", "&search=app&severity=medium",
                                   "&search=digest"])
def test_every_page_matches_the_full_listing(client, org_a, org_b, monkeypatch, shallow, query):
    from app import queries
    _fleet(client, org_a["key"])
    _fleet(client, org_b["key"])
    monkeypatch.setattr(queries, "_SHALLOW", shallow)
    everything, total = _all_items(client, org_a["token"], query)
    assert total == len(everything)
    severities = [s for part in query.split("&") if part.startswith("severity=")
                  for s in part[9:].split(",")]
    search = next((part[7:].lower() for part in query.split("&") if part.startswith("search=")), None)
    expected = [i for i in everything
                if (not severities or any(i["vulnerability_count"][s] for s in severities))
                and (not search or search in i["image_name"].lower() or search in (i["image_tag"] or "").lower())]
    assert expected == everything
    assert [i["last_scanned"] for i in everything] == sorted((i["last_scanned"] for i in everything),
                                                             reverse=True)
    for per_page in (1, 3, 7):
        pages = []
        for page in range(1, total // per_page + 3):
            r = client.get(f"/api/containers?per_page={per_page}&page={page}{query}",
                           headers=bearer(org_a["token"])).get_json()
            assert r["total"] == total
            pages += r["items"]
        assert [i["id"] for i in pages] == [i["id"] for i in everything]


def test_tallies_match_the_host_images(client, org_a, org_b):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import HostImage, ImageTally, SeverityTally
    _fleet(client, org_a["key"])
    _fleet(client, org_b["key"])
    tag = func.coalesce(HostImage.image_tag, "")
    by_image = dict(((o, n, t, m), c) for o, n, t, m, c in db.session.execute(
        select(HostImage.organization_id, HostImage.image_name, tag, HostImage.severity_mask, func.count())
        .group_by(HostImage.organization_id, HostImage.image_name, tag, HostImage.severity_mask)))
    tallies = {(o, n, t, m): c for o, n, t, m, c in db.session.execute(
        select(ImageTally.organization_id, ImageTally.image_name, ImageTally.tag_key,
               ImageTally.severity_mask, ImageTally.host_images)) if c}
    assert tallies == by_image
    assert db.session.scalar(select(func.count()).where(
        (ImageTally.name_lower != func.lower(ImageTally.image_name))
        | (ImageTally.tag_lower != func.lower(ImageTally.tag_key)))) == 0
    by_mask = {}
    for (o, _, _, m), c in by_image.items():
        by_mask[(o, m)] = by_mask.get((o, m), 0) + c
    assert {(o, m): c for o, m, c in db.session.execute(
        select(SeverityTally.organization_id, SeverityTally.severity_mask, SeverityTally.host_images)) if c} == by_mask
