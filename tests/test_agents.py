"""The shipped SentriKat agents (bash for Linux and macOS, PowerShell 7 and
Windows PowerShell 5.1) post to /api/agent/container-scan unchanged.

Every body is built from a real sample in fixtures/trivy/ by
tests/agent_bodies.py, exactly as that agent wraps it; counts are checked
against tests/independent_count.py, never against the app's own parser.
"""
import json
import re

import orjson
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Host, HostImage
from tests.agent_bodies import (
    SCANNER_VERSION,
    agent_headers,
    bash_body,
    powershell_body,
    powershell_json,
    severity_filtered,
)
from tests.conftest import bearer, load_sample
from tests.independent_count import expected_counts

URL = "/api/agent/container-scan"
PORT_REF = "registry.local:5000/team/app:1.2"
DIGEST = "sha256:" + "ab" * 32

ALPINE = "v2_trivy-golden_alpine-3.10_newest-fields.json"  # 0/0/4/0/0, has Metadata.ImageID
UBUNTU = "v2_trivy-golden_ubuntu-18.04_affected-no-fix.json"  # 0/0/4/1/0
JUICE = "v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json"  # 25/128/67/16/0
DEBIAN_LEGACY = "legacy_dd_debian-10.8_type-field_cvss_all-unfixed.json"  # a list: no Metadata
SMALL = (ALPINE, UBUNTU, "v2_trivy-golden_amazon-2.json",
         "v2_trivy-golden_ubi-7_redhat_will_not_fix_python-pkg.json",
         "v2_trivy-golden_spring4shell-jre11_jar_custom-empty-target.json", DEBIAN_LEGACY)

_SAMPLES = {}


def sample(name):
    if name not in _SAMPLES:
        _SAMPLES[name] = load_sample(name)
    return _SAMPLES[name]


def image_id_of(doc):
    meta = doc.get("Metadata") if isinstance(doc, dict) else None
    return (meta or {}).get("ImageID")


def short_id_of(doc):
    """Docker's short id: the first 12 hex digits of the image id, no 'sha256:'."""
    full = image_id_of(doc)
    return full.split(":", 1)[1][:12] if full else "5d0da3dc9764"


def linux_body(doc, ref, hostname="web-01", short_id=None):
    body = bash_body(doc, ref, hostname, short_id or short_id_of(doc))
    body["agent_id"] = "4c4c4544004b3810804cb4c04f4e3232"  # /etc/machine-id
    return body


def macos_body(doc, ref, hostname="mac-mini-07", short_id=None):
    body = bash_body(doc, ref, hostname, short_id or short_id_of(doc))
    body["agent_id"] = "564D2C8A-39F4-4E3B-9C2D-7A1B0F3E5C11"  # IOPlatformUUID
    return body


def pwsh7_body(doc, ref, hostname="WIN-SRV-01", short_id=None):
    return powershell_body(doc, ref, hostname, short_id or short_id_of(doc), wrap_arrays=False)


def winps51_body(doc, ref, hostname="WIN-SRV-02", short_id=None):
    return powershell_body(doc, ref, hostname, short_id or short_id_of(doc), wrap_arrays=True)


FLAVOURS = {
    "bash-linux": linux_body,
    "bash-macos": macos_body,
    "pwsh7": pwsh7_body,
    "winps51": winps51_body,
}


def encode(flavour, body):
    """The bytes each agent puts on the wire."""
    if flavour == "winps51":
        return powershell_json(body).encode("utf-8")
    return orjson.dumps(body)


def post(client, key, flavour, body, headers=None):
    return client.post(URL, data=encode(flavour, body), headers=headers or agent_headers(key))


def images_of(body):
    images = body["images"]
    return images["value"] if isinstance(images, dict) else images


def stored_images():
    return db.session.scalars(select(HostImage).order_by(HostImage.id)).all()


def detail_of(client, token, image_id):
    response = client.get(f"/api/containers/{image_id}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def counts_of(doc):
    counts = dict(expected_counts(doc))
    del counts["total"]
    return counts


def assert_accepted(response, images, found, hostname):
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "accepted", "images_processed": images,
                                   "vulnerabilities_found": found, "hostname": hostname}


@pytest.mark.parametrize("name", [ALPINE, JUICE, DEBIAN_LEGACY])
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_each_agent_flavour_is_stored_as_the_image_it_scanned(client, org_a, flavour, name):
    doc = sample(name)
    body = FLAVOURS[flavour](doc, PORT_REF)
    sent = images_of(body)[0]
    if flavour.startswith("bash"):
        assert (sent["image_name"], sent["image_tag"]) == ("registry.local", "5000/team/app:1.2")
    assert len(sent["image_id"]) == 12
    expected = expected_counts(doc)

    response = post(client, org_a["key"], flavour, body)

    assert_accepted(response, 1, expected["total"], body["hostname"].lower())
    [image] = stored_images()
    assert (image.image_name, image.image_tag, image.image_digest) == (
        "registry.local:5000/team/app", "1.2", None)
    # The short id grows into Metadata.ImageID; a report without one keeps it as sent.
    assert image.image_id == (image_id_of(doc) or sent["image_id"])
    detail = detail_of(client, org_a["token"], image.id)
    assert detail["vulnerability_count"] == counts_of(doc)
    assert len(detail["vulnerabilities"]) == expected["total"]
    assert (detail["scanner"], detail["scanner_version"]) == ("trivy", SCANNER_VERSION)
    assert detail["hostname"] == body["hostname"].lower()
    host = db.session.scalars(select(Host)).one()
    assert (host.hostname, host.agent_id) == (body["hostname"].lower(), body["agent_id"])


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_short_id_that_is_not_a_prefix_is_kept_as_sent(client, org_a, flavour):
    doc = sample(UBUNTU)
    assert not image_id_of(doc).split(":", 1)[1].startswith("0123456789ab")
    response = post(client, org_a["key"], flavour,
                    FLAVOURS[flavour](doc, "ubuntu:18.04", short_id="0123456789ab"))
    assert_accepted(response, 1, 5, response.get_json()["hostname"])
    [image] = stored_images()
    assert (image.image_name, image.image_tag, image.image_id) == ("ubuntu", "18.04", "0123456789ab")


def test_winps51_body_is_wrapped_and_has_reformatted_dates():
    """The 5.1 body really carries the shapes the server must accept."""
    text = powershell_json(winps51_body(sample(ALPINE), PORT_REF))
    body = json.loads(text)
    assert body["images"]["Count"] == 1
    report = body["images"]["value"][0]["trivy_output"]
    assert set(report["Results"]) == {"value", "Count"}
    assert set(report["Results"]["value"][0]["Vulnerabilities"]) == {"value", "Count"}
    assert set(report["Metadata"]["RepoTags"]) == {"value", "Count"}
    assert '"\\/Date(' in text
    assert not re.search(r'"\d{4}-\d\d-\d\dT[^"]*Z"', text)  # every UTC date was rewritten


def test_date_in_dotnet_form_anywhere_is_accepted(client, org_a):
    doc = dict(sample(ALPINE), CreatedAt="/Date(1700000000000)/")
    body = winps51_body(doc, "alpine:3.10")
    vuln = body["images"]["value"][0]["trivy_output"]["Results"]["value"][0]["Vulnerabilities"]["value"][0]
    vuln["PublishedDate"] = "/Date(1700000000000)/"
    vuln["LastModifiedDate"] = "2019-12-19T08:15:00.1234567+05:30"
    response = post(client, org_a["key"], "winps51", body)
    assert_accepted(response, 1, 4, "win-srv-02")
    [image] = stored_images()
    assert (image.image_name, image.image_tag, image.medium) == ("alpine", "3.10", 4)


# --- headers -----------------------------------------------------------------


def test_x_agent_key_and_x_api_key_equal_is_accepted(client, org_a):
    headers = dict(agent_headers(org_a["key"]), **{"X-API-Key": org_a["key"]})
    response = post(client, org_a["key"], "bash-linux", linux_body(sample(ALPINE), "alpine:3.10"),
                    headers=headers)
    assert_accepted(response, 1, 4, "web-01")
    assert [(i.image_name, i.image_tag) for i in stored_images()] == [("alpine", "3.10")]


def test_x_agent_key_and_x_api_key_different_is_401(client, org_a, org_b):
    headers = dict(agent_headers(org_a["key"]), **{"X-API-Key": org_b["key"]})
    response = post(client, org_a["key"], "bash-linux", linux_body(sample(ALPINE), "alpine:3.10"),
                    headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert "X-Agent-Key" in response.get_json()["message"]
    assert stored_images() == []


def test_x_agent_key_without_agent_permission_is_403_with_a_message(client, factory, org_a):
    key = factory.key(org_a["org"], permissions="", name="read-only")
    response = post(client, key, "winps51", winps51_body(sample(ALPINE), "alpine:3.10"))
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"] == "forbidden"
    assert "agent" in body["message"]
    assert stored_images() == []


def test_unknown_x_agent_key_is_401(client, org_a):
    response = post(client, "csk_not-a-key", "bash-macos", macos_body(sample(ALPINE), "alpine:3.10"))
    assert response.status_code == 401
    assert response.get_json()["message"] == "Invalid API key."
    assert stored_images() == []


# --- references ----------------------------------------------------------------


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("ref, name", [("nginx", "nginx"),
                                       ("registry.local:5000/team/app", "registry.local:5000/team/app"),
                                       ("ghcr.io/team/app", "ghcr.io/team/app")])
def test_reference_without_tag_is_latest(client, org_a, flavour, ref, name):
    body = FLAVOURS[flavour](sample(ALPINE), ref)
    if ":" not in ref:
        assert images_of(body)[0]["image_tag"] == "latest"
    response = post(client, org_a["key"], flavour, body)
    assert_accepted(response, 1, 4, body["hostname"].lower())
    [image] = stored_images()
    assert (image.image_name, image.image_tag, image.image_digest) == (name, "latest", None)
    assert image.image_id == image_id_of(sample(ALPINE))


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("ref, name, tag", [
    (f"app@{DIGEST}", "app", None),
    (f"registry.local:5000/team/app@{DIGEST}", "registry.local:5000/team/app", None),
    (f"app:1.0@{DIGEST}", "app", "1.0"),
])
def test_digest_reference(client, org_a, flavour, ref, name, tag):
    doc = sample(UBUNTU)
    response = post(client, org_a["key"], flavour, FLAVOURS[flavour](doc, ref))
    assert_accepted(response, 1, 5, response.get_json()["hostname"])
    [image] = stored_images()
    assert (image.image_name, image.image_tag, image.image_digest) == (name, tag, DIGEST)
    assert image.image_id == image_id_of(doc)


# --- reports and batches ---------------------------------------------------------


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("name", [JUICE, DEBIAN_LEGACY])
def test_reports_made_with_severity_high_critical(client, org_a, flavour, name):
    doc = severity_filtered(sample(name), ("HIGH", "CRITICAL"))
    counts = counts_of(doc)
    assert counts["high"] > 0 and counts["medium"] == counts["low"] == counts["unknown"] == 0
    body = FLAVOURS[flavour](doc, PORT_REF)
    response = post(client, org_a["key"], flavour, body)
    assert_accepted(response, 1, counts["critical"] + counts["high"], body["hostname"].lower())
    [image] = stored_images()
    assert {k: getattr(image, k) for k in counts} == counts


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_fifty_images_in_one_post(client, org_a, flavour):
    build = FLAVOURS[flavour]
    docs = [sample(SMALL[i % len(SMALL)]) for i in range(50)]
    refs = [f"registry.local:5000/team/app-{i:02d}:1.{i}" for i in range(50)]
    bodies = [build(doc, ref) for doc, ref in zip(docs, refs, strict=True)]
    body = bodies[0]
    images = [images_of(b)[0] for b in bodies]
    body["images"] = {"value": images, "Count": 50} if flavour == "winps51" else images
    total = sum(expected_counts(doc)["total"] for doc in docs)

    response = post(client, org_a["key"], flavour, body)

    assert_accepted(response, 50, total, body["hostname"].lower())
    stored = {(i.image_name, i.image_tag): i for i in stored_images()}
    assert len(stored) == 50
    for i, doc in enumerate(docs):
        image = stored[(f"registry.local:5000/team/app-{i:02d}", f"1.{i}")]
        assert {k: getattr(image, k) for k in counts_of(doc)} == counts_of(doc)
        assert image.image_id == (image_id_of(doc) or short_id_of(doc))
        assert image.scanner_version == SCANNER_VERSION


def test_rescan_by_the_agent_replaces_and_keeps_the_last_agent_id(client, org_a):
    first = linux_body(sample(ALPINE), PORT_REF)
    assert_accepted(post(client, org_a["key"], "bash-linux", first), 1, 4, "web-01")
    second = linux_body(sample(UBUNTU), PORT_REF)
    second["agent_id"] = "reinstalled-agent-0001"
    second["scanner_version"] = "unknown"
    assert_accepted(post(client, org_a["key"], "bash-linux", second), 1, 5, "web-01")
    [image] = stored_images()
    assert (image.image_name, image.image_tag, image.image_id) == (
        "registry.local:5000/team/app", "1.2", image_id_of(sample(UBUNTU)))
    assert (image.low, image.medium, image.scanner_version) == (1, 4, "unknown")
    assert db.session.scalars(select(Host.agent_id)).all() == ["reinstalled-agent-0001"]
