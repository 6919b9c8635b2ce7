"""Every real Trivy sample, posted as an agent would, counts as the independent oracle says."""
import os
from glob import glob

import pytest
from conftest import TRIVY_DIR, bearer, load_sample, submit
from hand_counts import HAND_COUNTS
from independent_count import expected_counts
from sqlalchemy import func, select

from app.extensions import db
from app.models import Finding, Host, HostImage

SAMPLES = sorted(os.path.basename(p) for p in glob(os.path.join(TRIVY_DIR, "*.json")))
SEVERITIES = ("critical", "high", "medium", "low", "unknown")

# What the 400 must name for each sample the oracle rejects.
REJECTION_WORDS = {
    "k8s_pre-v0.42_dd_Vulnerabilities-Misconfigurations-lists.json": ["k8s", "ClusterName"],
    "k8s_v0.42plus_scb_Resources_with-Error_2.6MB.json": ["k8s", "ClusterName"],
    "legacy_dd_mixed-targets_hand-edited_missing-fields.json": [
        "images[0].scan_results[0].Vulnerabilities[0].VulnerabilityID"],
}


def stored_rows():
    return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Host, HostImage, Finding))


def image_detail(client, token, hostname="web-1"):
    listing = client.get("/api/containers?per_page=100", headers=bearer(token)).get_json()
    assert listing["total"] == 1
    item = listing["items"][0]
    assert item["hostname"] == hostname
    return client.get(f"/api/containers/{item['id']}", headers=bearer(token)).get_json()


def test_every_sample_is_listed():
    assert len(SAMPLES) == 23
    assert set(REJECTION_WORDS) == {s for s in SAMPLES if expected_counts(load_sample(s)) is None}


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_counts_as_the_oracle(client, org_a, name):
    raw = load_sample(name)
    expected = expected_counts(raw)
    body = {"hostname": "Web-1", "images": [{"image_name": "example/app:1.0", "scan_results": raw}]}
    response = submit(client, org_a["key"], body)
    if expected is None:
        assert response.status_code == 400
        payload = response.get_json()
        assert payload["error"] == "bad_request"
        for word in REJECTION_WORDS[name]:
            assert word in payload["message"]
        assert stored_rows() == (0, 0, 0)
        return
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "accepted", "images_processed": 1,
                                   "vulnerabilities_found": expected["total"], "hostname": "web-1"}
    detail = image_detail(client, org_a["token"])
    assert detail["vulnerability_count"] == {s: expected[s] for s in SEVERITIES}
    assert len(detail["vulnerabilities"]) == expected["total"]
    assert (detail["image_name"], detail["image_tag"]) == ("example/app", "1.0")
    if name in HAND_COUNTS:
        assert detail["vulnerability_count"] == {s: HAND_COUNTS[name][s] for s in SEVERITIES}
        assert expected["total"] == HAND_COUNTS[name]["total"]


@pytest.mark.parametrize("name", sorted(HAND_COUNTS))
def test_hand_counts_as_trivy_output(client, org_a, name):
    """The shipped agents' field name, checked against the hand counts alone."""
    body = {"hostname": "web-1", "images": [{"image_name": "example/app:1.0",
                                             "trivy_output": load_sample(name)}]}
    response = submit(client, org_a["key"], body, header="X-Agent-Key")
    assert response.status_code == 200
    assert response.get_json()["vulnerabilities_found"] == HAND_COUNTS[name]["total"]
    detail = image_detail(client, org_a["token"])
    assert detail["vulnerability_count"] == {s: HAND_COUNTS[name][s] for s in SEVERITIES}


def test_mediawiki_repeats_keep_the_fixed_version(client, org_a):
    body = {"hostname": "web-1", "images": [{
        "image_name": "mediawiki:1.27.3",
        "scan_results": load_sample("legacy_scb_mediawiki-1.27.3_debian8_3.4MB_dups_unknown_null.json")}]}
    assert submit(client, org_a["key"], body).status_code == 200
    detail = image_detail(client, org_a["token"])
    perl = {v["package_name"]: v["fixed_version"] for v in detail["vulnerabilities"]
            if v["cve_id"] == "CVE-2018-6797"}
    assert perl == {"perl": "5.20.2-3+deb8u10", "perl-base": "5.20.2-3+deb8u10",
                    "perl-modules": "5.20.2-3+deb8u10"}


def test_rejected_sample_among_good_ones_stores_nothing(client, org_a):
    good = load_sample("v2_trivy-golden_amazon-2.json")
    bad = load_sample("legacy_dd_mixed-targets_hand-edited_missing-fields.json")
    body = {"hostname": "web-1", "images": [{"image_name": "a:1", "scan_results": good},
                                            {"image_name": "b:1", "scan_results": good},
                                            {"image_name": "c:1", "scan_results": bad}]}
    response = submit(client, org_a["key"], body)
    assert response.status_code == 400
    assert "images[2].scan_results[0].Vulnerabilities[0].VulnerabilityID" in response.get_json()["message"]
    assert stored_rows() == (0, 0, 0)


# Samples that name their image themselves, posted bare with ?hostname=:
# (image_name, image_tag, image_id) as stored.
_TEST_IMAGES = "ghcr.io/aquasecurity/trivy-test-images"
SELF_NAMED = {
    "v2_dd_alpine-3.11_licenses-only.json": (
        "alpine", "3.11", "sha256:a787cb9865032e5b5a407ecdf34b57a23a4a076aaa043d71742ddb6726ec9229"),
    "v2_dd_alpine-3.14_result-without-Vulnerabilities.json": ("trivy-unittest", "latest", None),
    "v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json": (
        "bkimminich/juice-shop", "v10.2.0",
        "sha256:21ef0dc04325e8ee21e385dc672460ed6b5c058cef1fedb84086ed5fca3f91cd"),
    "v2_scb_juice-shop-v12.10.2_Results-key-absent.json": (
        "bkimminich/juice-shop", "v12.10.2",
        "sha256:be30ca1df4be08840f6ca53885a1d371d35f54eae326161a2a40aa3c535fe703"),
    # ArtifactName is the tarball Trivy read: RepoTags holds the name.
    "v2_trivy-golden_alpine-3.10_newest-fields.json": (
        _TEST_IMAGES, "alpine-310", "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"),
    "v2_trivy-golden_amazon-2.json": (
        _TEST_IMAGES, "amazon-2", "sha256:b94321659aca6a89cb7650a5b864bc8ec4bf62c620b8f1a01530c2e90a88c391"),
    "v2_trivy-golden_spring4shell-jre11_jar_custom-empty-target.json": (
        _TEST_IMAGES, "spring4shell-jre11",
        "sha256:ed8f0747d483b60657982f0ef1ba74482aed08795cf0eb774b00bc53022a8351"),
    "v2_trivy-golden_ubi-7_redhat_will_not_fix_python-pkg.json": (
        _TEST_IMAGES, "ubi-7", "sha256:6fecccc91c83e11ae4fede6793e9410841221d4779520c2b9e9fb7f7b3830264"),
    "v2_trivy-golden_ubuntu-18.04_affected-no-fix.json": (
        _TEST_IMAGES, "ubuntu-1804", "sha256:a2a15febcdf362f6115e801d37b5e60d6faaeedcb9896155e5fe9d754025be12"),
}
# Reports that name no image (blank names, a directory, a file, a URL): a bare
# post of them needs ?image_name=.
NAMELESS = [
    "legacy_dd_debian-10.8_type-field_cvss_all-unfixed.json",
    "legacy_dd_whole-report-null.json",
    "legacy_scb_amass_tag-at-digest_vulns-null.json",
    "legacy_scb_mediawiki-1.27.3_debian8_3.4MB_dups_unknown_null.json",
    "legacy_trivy-v0.18.3_centos-7_golden.json",
    "v2_dd_debian-10.13_all-8-Status-values_blank-ArtifactName.json",
    "v2_dd_fs_misconfig-and-secrets.json",
    "v2_dd_trivy-0.69.1_fs-jar_cvss-v4-only.json",
    "v2_scb_repo-scan_github-url_gomod-npm-pip.json",
    "v2_trivy-golden_gomod-repo_UNKNOWN-severity_range-fixedversions.json",
    "v2_trivy-golden_sbom-cyclonedx-input_fluentd_debian-gemspec.json",
]


def post_bare(client, key, raw, query):
    import orjson
    return client.post(f"/api/agent/container-scan?{query}", data=orjson.dumps(raw),
                       headers={"X-API-Key": key})


@pytest.mark.parametrize("name", sorted(SELF_NAMED))
def test_bare_report_names_itself(client, org_a, name):
    raw = load_sample(name)
    response = post_bare(client, org_a["key"], raw, "hostname=Web-1")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["vulnerabilities_found"] == expected_counts(raw)["total"]
    detail = image_detail(client, org_a["token"])
    assert (detail["image_name"], detail["image_tag"], detail["image_id"]) == SELF_NAMED[name]


@pytest.mark.parametrize("name", NAMELESS)
def test_bare_report_without_a_name(client, org_a, name):
    raw = load_sample(name)
    response = post_bare(client, org_a["key"], raw, "hostname=web-1")
    assert response.status_code == 400
    assert "image_name" in response.get_json()["message"]
    assert stored_rows() == (0, 0, 0)
    response = post_bare(client, org_a["key"], raw, "hostname=web-1&image_name=team/app:2.0")
    assert response.status_code == 200
    assert response.get_json()["vulnerabilities_found"] == expected_counts(raw)["total"]
    detail = image_detail(client, org_a["token"])
    assert (detail["image_name"], detail["image_tag"]) == ("team/app", "2.0")


def test_bare_report_without_hostname(client, org_a):
    response = post_bare(client, org_a["key"], load_sample("v2_trivy-golden_amazon-2.json"), "")
    assert response.status_code == 400
    assert "hostname" in response.get_json()["message"]
    assert stored_rows() == (0, 0, 0)


def test_every_sample_is_bare_tested():
    accepted = {s for s in SAMPLES if expected_counts(load_sample(s)) is not None}
    assert accepted == set(SELF_NAMED) | set(NAMELESS)
    assert not set(SELF_NAMED) & set(NAMELESS)
