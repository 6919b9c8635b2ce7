"""Rescans whose results did not change are matched by digest and not parsed again."""
import copy

import orjson
from conftest import bearer, load_sample, submit
from sqlalchemy import func, select

from app import agent, ingest
from app.extensions import db
from app.models import Finding, FindingSet, HostImage, ReportDigest

JUICE = "v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json"  # 25/128/67/16/0


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def refuse_parsing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the report was parsed again")
    monkeypatch.setattr(agent.trivy, "parse_report", refuse)


def post(client, key, doc, host="web-1", name="bkimminich/juice-shop:v10.2.0"):
    r = submit(client, key, {"hostname": host, "images": [{"image_name": name, "scan_results": doc}]})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_unchanged_rescan_is_not_parsed_again(client, org_a, monkeypatch):
    doc = load_sample(JUICE)
    first = post(client, org_a["key"], doc)
    rescan = copy.deepcopy(doc)
    rescan["CreatedAt"] = "2031-01-01T00:00:00Z"
    calls = []
    real = agent.trivy.parse_report
    monkeypatch.setattr(agent.trivy, "parse_report", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = post(client, org_a["key"], rescan)
    assert calls == []
    assert second == first and first["vulnerabilities_found"] == 236
    assert (count(FindingSet), count(Finding), count(ReportDigest), count(HostImage)) == (1, 236, 1, 1)
    item = client.get("/api/containers", headers=bearer(org_a["token"])).get_json()["items"][0]
    assert item["vulnerability_count"] == {"critical": 25, "high": 128, "medium": 67, "low": 16, "unknown": 0}


def test_reformatted_body_matches_and_other_hosts_and_orgs_share_it(client, org_a, org_b, monkeypatch):
    doc = load_sample(JUICE)
    post(client, org_a["key"], doc)
    refuse_parsing(monkeypatch)
    body = orjson.dumps({"hostname": "db-9", "images": [{"image_name": "js:2", "scan_results": doc}]},
                        option=orjson.OPT_INDENT_2)
    r = client.post("/api/agent/container-scan", data=body, headers={"X-API-Key": org_b["key"]})
    assert r.status_code == 200 and r.get_json()["vulnerabilities_found"] == 236
    assert (count(FindingSet), count(Finding), count(HostImage)) == (1, 236, 2)
    image_id = client.get("/api/containers", headers=bearer(org_b["token"])).get_json()["items"][0]["id"]
    detail = client.get(f"/api/containers/{image_id}", headers=bearer(org_b["token"])).get_json()
    assert len(detail["vulnerabilities"]) == 236 and detail["hostname"] == "db-9"


def test_changed_results_are_parsed(client, org_a):
    doc = load_sample(JUICE)
    post(client, org_a["key"], doc)
    doc["Results"][0]["Vulnerabilities"] = doc["Results"][0]["Vulnerabilities"][1:]
    second = post(client, org_a["key"], doc)
    assert second["vulnerabilities_found"] == 235
    assert (count(FindingSet), count(ReportDigest), count(HostImage)) == (2, 2, 1)


def test_another_parser_version_never_reuses_a_digest(client, org_a, monkeypatch):
    doc = load_sample(JUICE)
    post(client, org_a["key"], doc)
    monkeypatch.setattr(ingest, "PARSER_VERSION", "next")
    calls = []
    real = agent.trivy.parse_report
    monkeypatch.setattr(agent.trivy, "parse_report", lambda *a, **k: calls.append(1) or real(*a, **k))
    post(client, org_a["key"], doc)
    assert calls == [1] and count(ReportDigest) == 2 and count(FindingSet) == 1


def test_rejected_reports_are_not_remembered(client, org_a):
    doc = load_sample(JUICE)
    doc["Results"][1]["Vulnerabilities"][3]["PkgName"] = 7
    for _ in range(2):
        r = submit(client, org_a["key"], {"hostname": "h", "images": [{"image_name": "a", "scan_results": doc}]})
        assert r.status_code == 400
        assert "Results[1].Vulnerabilities[3].PkgName" in r.get_json()["message"]
    assert (count(ReportDigest), count(FindingSet), count(HostImage)) == (0, 0, 0)


def test_digest_is_independent_of_formatting_but_not_of_content():
    doc = load_sample(JUICE)
    results = doc["Results"]
    same = orjson.loads(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    assert ingest.report_digest(results) == ingest.report_digest(same)
    changed = copy.deepcopy(results)
    changed[0]["Vulnerabilities"][0]["Severity"] = "LOW"
    assert ingest.report_digest(changed) != ingest.report_digest(results)
    moved = copy.deepcopy(results)
    moved[0]["Vulnerabilities"], moved[1]["Vulnerabilities"] = moved[1]["Vulnerabilities"], moved[0]["Vulnerabilities"]
    assert ingest.report_digest(moved) != ingest.report_digest(results)
