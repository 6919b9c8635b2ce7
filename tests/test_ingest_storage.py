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
