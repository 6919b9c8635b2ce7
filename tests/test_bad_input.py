"""Every malformed or hostile body gets a clear 4xx JSON error, and nothing of it is stored."""
import base64
import gzip
import io
import json
import time
import zlib

import orjson
import pytest
from conftest import Factory, bearer, empty_tables, load_sample, make_app, submit
from sqlalchemy import func, select

from app.extensions import db, limiter
from app.models import Finding, FindingSet, Host, HostImage

URL = "/api/agent/container-scan"
AMAZON = "v2_trivy-golden_amazon-2.json"  # 1 medium, 1 low


def stored_rows():
    return tuple(db.session.scalar(select(func.count()).select_from(m))
                 for m in (Host, HostImage, FindingSet, Finding))


def assert_rejected(response, status=400, *words):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    payload = response.get_json()
    assert set(payload) <= {"error", "message", "details"}
    assert isinstance(payload["error"], str) and isinstance(payload["message"], str)
    for word in words:
        assert word in payload["message"], payload["message"]
    assert stored_rows() == (0, 0, 0, 0)
    return payload


def post_raw(client, key, data, headers=None, query=""):
    return client.post(URL + query, data=data, headers={"X-API-Key": key, **(headers or {})})


def envelope(*images, hostname="web-1"):
    return {"hostname": hostname, "images": list(images)}


def image(name="app:1", report=None, **fields):
    return {"image_name": name, "scan_results": report, **fields}


def vuln(cve="CVE-2024-1", pkg="openssl", **fields):
    return {"VulnerabilityID": cve, "PkgName": pkg, **fields}


def report(*vulns):
    return {"SchemaVersion": 2, "Results": [{"Target": "app", "Vulnerabilities": list(vulns)}]}


# --- not a JSON object ---------------------------------------------------------------------


@pytest.mark.parametrize("data,words", [
    (b"not json", ["not valid JSON"]),
    (b'{"hostname": "web-1", "images": [', ["not valid JSON"]),
    (b"", ["empty"]),
    (b"   \n", ["empty"]),
    (b"\xff\xfe\xfa", ["not valid"]),
    (b'"a string"', ["must be a JSON object"]),
    (b"42", ["must be a JSON object"]),
    (b"true", ["must be a JSON object"]),
    (b"[1, 2]", ["hostname"]),
    (b"null", ["hostname"]),
    (b"{}", ["hostname"]),
])
def test_not_a_json_object(client, org_a, data, words):
    assert_rejected(post_raw(client, org_a["key"], data), 400, *words)


# --- the envelope --------------------------------------------------------------------------


@pytest.mark.parametrize("body,path", [
    ({"images": []}, "hostname"),
    ({"hostname": 5, "images": []}, "hostname"),
    ({"hostname": None, "images": []}, "hostname"),
    ({"hostname": ["web-1"], "images": []}, "hostname"),
    ({"hostname": "web-1"}, "images"),
    ({"hostname": "web-1", "images": None}, "images"),
    ({"hostname": "web-1", "images": "app:1"}, "images"),
    ({"hostname": "web-1", "images": {"image_name": "app:1"}}, "images"),
    (envelope(image(), "app:2"), "images[1]"),
    (envelope(image(), image(name=5)), "images[1].image_name"),
    (envelope(image(name=["app:1"])), "images[0].image_name"),
    (envelope(image(image_tag=1.5)), "images[0].image_tag"),
    (envelope(image(image_id={})), "images[0].image_id"),
    (envelope({"image_name": "app:1"}), "images[0].scan_results"),
    ({**envelope(image()), "agent_id": 7}, "agent_id"),
    ({**envelope(image()), "scanner_version": "x" * 65}, "scanner_version"),
])
def test_envelope_fields(client, org_a, body, path):
    payload = assert_rejected(submit(client, org_a["key"], body), 400, path)
    assert payload["message"].startswith("Invalid request: " + path)


@pytest.mark.parametrize("name,words", [
    ("", "images[0].image_name"),  # and no name in the report
    ("app:", "empty image tag"),
    ("my app:1", "white space"),
    ("app:1\t", "control characters"),
    (" app:1 ", None),
    ("a" * 513, "longer than 512"),
])
def test_image_names(client, org_a, name, words):
    response = submit(client, org_a["key"], envelope(image(name)))
    if words is None:  # trailing white space is trimmed
        assert response.status_code == 200
        return
    assert_rejected(response, 400, words)


@pytest.mark.parametrize("hostname,words", [
    ("", "Must not be empty"),
    ("   ", "Must not be empty"),
    ("h" * 254, "at most 253"),
    ("web\x07-1", "control characters"),
    ("web\n1", "control characters"),
    ("web\x00", "control characters"),
    ("web\x9b1", "control characters"),
])
def test_bad_hostnames(client, org_a, hostname, words):
    payload = assert_rejected(submit(client, org_a["key"], envelope(image(), hostname=hostname)),
                              400, "hostname", words)
    assert "hostname" in payload["details"]


def test_longest_hostname_is_trimmed_and_lowercased(client, org_a):
    response = submit(client, org_a["key"], envelope(image(), hostname="  " + "H" * 253 + " "))
    assert response.status_code == 200
    assert response.get_json()["hostname"] == "h" * 253


def test_query_hostname_for_a_bare_report(client, org_a):
    assert_rejected(post_raw(client, org_a["key"], b"{}", query="?hostname=web%00"), 400, "control")
    assert_rejected(post_raw(client, org_a["key"], b"{}", query="?hostname="), 400, "hostname")
    response = post_raw(client, org_a["key"], b"{}", query="?hostname=web-1&image_name=app:1")
    assert response.status_code == 200


def test_envelope_without_hostname_takes_the_query(client, org_a):
    body = orjson.dumps({"images": [image(report=report(vuln()))]})
    response = post_raw(client, org_a["key"], body, query="?hostname=Web-2")
    assert response.status_code == 200
    assert response.get_json()["hostname"] == "web-2"


# --- wrong types in a report ---------------------------------------------------------------


def _deep_bad_body():
    good = report(*[vuln(f"CVE-{i}") for i in range(6)])
    bad = json.loads(json.dumps(good))
    bad["Results"][0]["Vulnerabilities"][5]["PkgName"] = 42
    return envelope(image("a:1", good), image("b:1", good), image("c:1", bad))


@pytest.mark.parametrize("body,path", [
    (_deep_bad_body(), "images[2].scan_results.Results[0].Vulnerabilities[5].PkgName"),
    (envelope(image(report="not a report")), "images[0].scan_results"),
    (envelope(image(report={"Results": "none"})), "images[0].scan_results.Results"),
    (envelope(image(report=[{"Target": 1}])), "images[0].scan_results[0].Target"),
    (envelope(image(report=report(vuln(Severity=["HIGH"])))),
     "images[0].scan_results.Results[0].Vulnerabilities[0].Severity"),
    (envelope(image(report=report(vuln(cve=None)))),
     "images[0].scan_results.Results[0].Vulnerabilities[0].VulnerabilityID"),
    (envelope({"image_name": "x:1", "trivy_output": report(vuln(), "CVE-1")}),
     "images[0].trivy_output.Results[0].Vulnerabilities[1]"),
    (envelope(image(None, {"ArtifactName": ["x"]})), "images[0].scan_results.ArtifactName"),
    (envelope(image(report={"ClusterName": "prod", "Resources": []})), "images[0].scan_results"),
])
def test_wrong_types_anywhere_in_a_report(client, org_a, body, path):
    payload = assert_rejected(submit(client, org_a["key"], body), 400, "Malformed Trivy report", path)
    dotted = path.replace("[", ".").replace("]", "")
    assert list(payload["details"]) == [dotted]


def test_bare_report_paths(client, org_a):
    body = orjson.dumps(report(vuln(), vuln(pkg=None)))
    assert_rejected(post_raw(client, org_a["key"], body, query="?hostname=h&image_name=a:1"), 400,
                    "report.Results[0].Vulnerabilities[1].PkgName")


# --- text a database cannot hold -----------------------------------------------------------


def test_nul_in_report_text_is_stripped(client, org_a):
    v = vuln("CVE-\u00002024-1", "open\x00ssl", Title="a\x00b", Description="\x00",
             InstalledVersion="1.0\x00", PkgPath="\x00", FixedVersion="\x00")
    body = envelope(image("app:1", {"Results": [{"Target": "t\x00", "Vulnerabilities": [v]}]},
                          ), hostname="web-1")
    response = submit(client, org_a["key"], body)
    assert response.status_code == 200
    assert response.get_json()["vulnerabilities_found"] == 1
    listing = client.get("/api/containers", headers=bearer(org_a["token"])).get_json()
    detail = client.get(f"/api/containers/{listing['items'][0]['id']}", headers=bearer(org_a["token"]))
    (finding,) = detail.get_json()["vulnerabilities"]
    assert finding == {"cve_id": "CVE-2024-1", "package_name": "openssl", "installed_version": "1.0",
                       "fixed_version": None, "severity": "UNKNOWN", "title": "ab", "description": None,
                       "target": "t", "pkg_path": None}


@pytest.mark.parametrize("body,path", [
    (envelope(image("app\x00:1")), "images[0].image_name"),
    (envelope(image(image_tag="1\x00")), "images[0].image_tag"),
    (envelope(image(image_id="sha256:\x00")), "images[0].image_id"),
    ({**envelope(image()), "agent_id": "a\x00"}, "agent_id"),
    ({**envelope(image()), "scanner": "trivy\x00"}, "scanner"),
    (envelope(image(None, {"ArtifactName": "app\x00:1"})), "images[0].scan_results.ArtifactName"),
    (envelope(image(None, {"ArtifactName": "x.tar", "Metadata": {"RepoTags": ["a:\x00"]}})),
     "images[0].scan_results.Metadata.RepoTags[0]"),
    (envelope(image(None, {"ArtifactName": "a:1", "Metadata": {"ImageID": "\x00"}})), "images[0].image_id"),
])
def test_nul_in_names_is_rejected(client, org_a, body, path):
    assert_rejected(submit(client, org_a["key"], body), 400, path)


def test_nul_in_list_query_and_credentials(client, org_a):
    response = client.get("/api/containers?search=a%00b", headers=bearer(org_a["token"]))
    assert_rejected(response, 400, "search")
    response = client.get("/api/containers?severity=high%00", headers=bearer(org_a["token"]))
    assert_rejected(response, 400, "severity")
    creds = base64.b64encode(b"ali\x00ce:secret-pass").decode()
    response = client.post("/api/auth/token", headers={"Authorization": f"Basic {creds}"})
    assert_rejected(response, 401)
    response = post_raw(client, "key\x00", orjson.dumps(envelope(image())))
    assert_rejected(response, 401)


@pytest.mark.parametrize("text", [
    '{"hostname": "web-\\ud800", "images": []}',
    '{"hostname": "web-1", "images": [{"image_name": "a:1", "scan_results": {"Results": '
    '[{"Target": "t", "Vulnerabilities": [{"VulnerabilityID": "C", "PkgName": "p", "Title": "\\udfff"}]}]}}]}',
    '{"hostname": "web-1", "images": [], "\\ud83d": 1}',
    '{"hostname": "web-1", "images": [{"image_name": "a:\\ud83d\\u0041"}]}',
])
def test_lone_surrogates(client, org_a, text):
    assert_rejected(post_raw(client, org_a["key"], text.encode()), 400, "not valid JSON")


def test_surrogate_pair_is_text(client, org_a):
    body = '{"hostname": "web-1", "images": [{"image_name": "a:1", "scan_results": [{"Target": "t", ' \
           '"Vulnerabilities": [{"VulnerabilityID": "C", "PkgName": "\\ud83d\\ude00"}]}]}]}'
    response = post_raw(client, org_a["key"], body.encode())
    assert response.status_code == 200
    assert response.get_json()["vulnerabilities_found"] == 1


@pytest.mark.parametrize("text", [
    "[" * 100000 + "]" * 100000,
    '{"a":' * 100000 + "1" + "}" * 100000,
    '{"hostname": "web-1", "images": [{"image_name": "a:1", "scan_results": ' + "[" * 100000 + "]" * 100000
    + "}]}",
    '{"hostname": "web-1", "images": [' + "[" * 100000,
])
def test_nesting_too_deep(client, org_a, text):
    assert_rejected(post_raw(client, org_a["key"], text.encode(), query="?hostname=h"), 400, "not valid JSON")


def test_unknown_deep_values_are_ignored(client, org_a):
    deep = "[" * 500 + "]" * 500
    text = ('{"hostname": "web-1", "x": ' + deep + ', "images": [{"image_name": "a:1", "scan_results": '
            '{"Extra": ' + deep + ', "Results": [{"Target": "t", "Vulnerabilities": [{"VulnerabilityID": '
            '"C", "PkgName": "p", "CVSS": ' + deep + '}]}]}}]}')
    response = post_raw(client, org_a["key"], text.encode())
    assert response.status_code == 200
    assert response.get_json()["vulnerabilities_found"] == 1


# --- size, compression and content type ----------------------------------------------------


@pytest.fixture
def small_app(_schema):
    """The app with MAX_CONTENT_LENGTH of 16 KiB, an agent key in ``small_app.key``."""
    app = make_app(MAX_CONTENT_LENGTH=16384)
    with app.app_context():
        empty_tables()
        limiter.reset()
        app.key = Factory().key(Factory().org("small"))
        yield app
        db.session.remove()
        db.engine.dispose()


def _ok_body(padding=0):
    return orjson.dumps(envelope(image(report=report(vuln())))) + b" " * padding


def test_body_over_the_limit(small_app):
    client = small_app.test_client()
    response = post_raw(client, small_app.key, _ok_body(16384))
    payload = assert_rejected(response, 413, "16384 bytes")
    assert payload["error"] == "payload_too_large"
    assert post_raw(client, small_app.key, _ok_body(16000)).status_code == 200


def test_streamed_body_over_the_limit(small_app):
    """A chunked body (no Content-Length, the server ends the stream) is held to the limit too."""
    client = small_app.test_client()

    def chunked(body):
        return client.post(URL, input_stream=io.BytesIO(body),
                           headers={"X-API-Key": small_app.key, "Transfer-Encoding": "chunked"},
                           environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})

    response = chunked(_ok_body(20000))  # still valid JSON if it were cut at the limit
    assert response.request.content_length is None
    assert_rejected(response, 413)
    assert chunked(_ok_body(16000)).status_code == 200
    exact = _ok_body(0)
    assert chunked(exact + b" " * (16384 - len(exact))).status_code == 200


def test_gzip_bomb(small_app):
    client = small_app.test_client()
    bomb = gzip.compress(_ok_body(10_000_000), mtime=0)
    assert len(bomb) < 16384
    response = post_raw(client, small_app.key, bomb, {"Content-Encoding": "gzip"})
    assert_rejected(response, 413)
    # Split over many members, each small: the limit is on their sum.
    members = b"".join(gzip.compress(b" " * 1000) for _ in range(20)) + gzip.compress(_ok_body())
    assert_rejected(post_raw(client, small_app.key, members, {"Content-Encoding": "gzip"}), 413)
    # Just under the limit once inflated is fine.
    fits = gzip.compress(_ok_body(16000))
    assert post_raw(client, small_app.key, fits, {"Content-Encoding": "gzip"}).status_code == 200


def test_gzip_bodies(client, org_a):
    raw = orjson.dumps(envelope(image(report=load_sample(AMAZON))))
    for headers, data in (
        ({"Content-Encoding": "gzip"}, gzip.compress(raw)),
        ({"Content-Encoding": "GZIP"}, gzip.compress(raw)),
        ({"Content-Encoding": "x-gzip"}, gzip.compress(raw)),
        ({"Content-Encoding": "deflate"}, zlib.compress(raw)),
        ({"Content-Encoding": "deflate"}, zlib.compress(raw, wbits=-15)),
        ({"Content-Encoding": "gzip, identity"}, gzip.compress(raw)),
        ({"Content-Encoding": "gzip"}, gzip.compress(raw[:100]) + gzip.compress(raw[100:])),
        ({}, gzip.compress(raw)),  # curl --data-binary @report.json.gz
    ):
        response = post_raw(client, org_a["key"], data, headers)
        assert response.status_code == 200, (headers, response.get_json())
        assert response.get_json()["vulnerabilities_found"] == 2


@pytest.mark.parametrize("headers,data,status,words", [
    ({"Content-Encoding": "gzip"}, b"{}", 400, "not valid compressed data"),
    ({"Content-Encoding": "gzip"}, gzip.compress(b'{"a": 1}')[:-12], 400, "truncated"),
    ({"Content-Encoding": "gzip"}, gzip.compress(b'{"a": 1}') + b"junk", 400, "compressed"),
    ({"Content-Encoding": "br"}, b"{}", 415, "Content-Encoding"),
    ({"Content-Encoding": "gzip"}, gzip.compress(b"not json"), 400, "not valid JSON"),
])
def test_bad_compressed_bodies(client, org_a, headers, data, status, words):
    assert_rejected(post_raw(client, org_a["key"], data, headers), status, words)


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded", None, "text/plain", "application/json; charset=utf-8",
    "multipart/form-data; boundary=x"])
def test_any_content_type_is_read_as_json(client, org_a, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    raw = orjson.dumps(envelope(image(report=load_sample(AMAZON))))
    response = post_raw(client, org_a["key"], raw, headers)
    assert response.status_code == 200
    assert response.get_json()["vulnerabilities_found"] == 2


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_byte_order_marks(client, org_a, encoding):
    text = json.dumps(envelope(image(report=report(vuln(Title="Zürich")))), ensure_ascii=False)
    response = post_raw(client, org_a["key"], text.encode(encoding))
    assert response.status_code == 200
    assert response.get_json()["vulnerabilities_found"] == 1


# --- many images ---------------------------------------------------------------------------


def test_more_images_than_the_limit(client, org_a):
    body = envelope(*[image(f"app-{i}:1") for i in range(1001)])
    assert_rejected(submit(client, org_a["key"], body), 400, "images", "1001", "limit is 1000")


def test_huge_image_list_is_rejected_before_validation(client, org_a):
    body = b'{"hostname": "web-1", "images": [' + b",".join([b"{}"] * 300_000) + b"]}"
    started = time.perf_counter()
    assert_rejected(post_raw(client, org_a["key"], body), 400, "Too many images")
    assert time.perf_counter() - started < 3


def test_a_thousand_images_in_one_request(client, org_a):
    sample = report(vuln("CVE-1", Severity="HIGH"), vuln("CVE-2", Severity="low"))
    body = envelope(*[image(f"registry.local:5000/team/app-{i}:1.{i}", sample) for i in range(1000)])
    started = time.perf_counter()
    response = submit(client, org_a["key"], body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted", "images_processed": 1000,
                                   "vulnerabilities_found": 2000, "hostname": "web-1"}
    assert elapsed < 15
    assert stored_rows() == (1, 1000, 1, 2)  # one finding set shared by all
    listing = client.get("/api/containers?severity=high&per_page=1", headers=bearer(org_a["token"]))
    assert listing.get_json()["total"] == 1000


def test_latin1_body_from_windows_powershell_is_read(client, org_a):
    """Windows PowerShell 5.1 sends a string body as ISO-8859-1 without a charset."""
    text = ('{"hostname": "win-1", "images": [{"image_name": "app:1", "scan_results": {"Results": [{"Target": "t",'
            ' "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": "HIGH",'
            ' "Title": "Caf\u00e9 na\u00efve \u00bfqu\u00e9?"}]}]}}]}')
    r = client.post("/api/agent/container-scan", data=text.encode("latin-1"),
                    headers={"X-API-Key": org_a["key"], "Content-Type": "application/json"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["vulnerabilities_found"] == 1
    image = client.get("/api/containers", headers={"Authorization": f"Bearer {org_a['token']}"}).get_json()
    detail = client.get(f"/api/containers/{image['items'][0]['id']}",
                        headers={"Authorization": f"Bearer {org_a['token']}"}).get_json()
    assert detail["vulnerabilities"][0]["title"] == "Caf\u00e9 na\u00efve \u00bfqu\u00e9?"


@pytest.mark.parametrize("charset, codec", [("iso-8859-1", "latin-1"), ("windows-1252", "cp1252"),
                                            ("utf-16", "utf-16")])
def test_charset_in_content_type_is_honoured(client, org_a, charset, codec):
    text = '{"hostname": "h\u00e9", "images": []}'
    r = client.post("/api/agent/container-scan", data=text.encode(codec),
                    headers={"X-API-Key": org_a["key"], "Content-Type": f"application/json; charset={charset}"})
    assert r.status_code == 200 and r.get_json()["hostname"] == "h\u00e9"


def test_unknown_charset_is_415(client, org_a):
    r = client.post("/api/agent/container-scan", data=b'{"hostname": "h", "images": []}',
                    headers={"X-API-Key": org_a["key"], "Content-Type": "application/json; charset=klingon"})
    assert r.status_code == 415 and r.get_json()["error"] == "unsupported_media_type"
