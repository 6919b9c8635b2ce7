"""Unit tests of app/trivy.py: report shapes, finding identity, severity, image names."""
import copy

import pytest
from conftest import load_sample

from app.trivy import Finding, ReportError, content_hash, parse_reference, parse_report, resolve_image

ZERO = {"critical": 0, "high": 0, "medium": 0, "low": 0, "unknown": 0}
ALPINE_310 = "v2_trivy-golden_alpine-3.10_newest-fields.json"
ALPINE_310_ID = "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"


def counts(**nonzero):
    return dict(ZERO, **nonzero)


def vuln(cve="CVE-2024-0001", pkg="openssl", **fields):
    return {"VulnerabilityID": cve, "PkgName": pkg, **fields}


def report(*results):
    return {"SchemaVersion": 2, "ArtifactName": "app:1", "Results": list(results)}


def result(*vulns, target="app:1 (debian 12.4)", **fields):
    return {"Target": target, "Class": "os-pkgs", "Vulnerabilities": list(vulns), **fields}


def keys(parsed):
    return [(f.cve_id, f.package_name, f.installed_version, f.pkg_path or f.target)
            for f in parsed.findings]


def name_of(doc, image_name=None, image_tag=None, image_id=None):
    ref = resolve_image(image_name, image_tag, image_id, doc, "images[0]", "images[0].scan_results")
    return ref.name, ref.tag, ref.digest, ref.image_id


# --- the document itself -------------------------------------------------------------------


def test_schema_2_report():
    parsed = parse_report(load_sample(ALPINE_310))
    assert parsed.counts == counts(medium=4)
    target = "testdata/fixtures/images/alpine-310.tar.gz (alpine 3.10.2)"
    assert keys(parsed) == [("CVE-2019-1549", "libcrypto1.1", "1.1.1c-r0", target),
                            ("CVE-2019-1549", "libssl1.1", "1.1.1c-r0", target),
                            ("CVE-2019-1551", "libcrypto1.1", "1.1.1c-r0", target),
                            ("CVE-2019-1551", "libssl1.1", "1.1.1c-r0", target)]
    assert {f.fixed_version for f in parsed.findings} == {"1.1.1d-r0", "1.1.1d-r2"}


def test_legacy_list_report():
    parsed = parse_report(load_sample("legacy_dd_debian-10.8_type-field_cvss_all-unfixed.json"))
    assert parsed.counts == counts(high=18, medium=9, low=65, unknown=1)
    assert len(parsed.findings) == 93
    assert {f.target for f in parsed.findings} == {"debian (debian 10.8)"}
    assert {f.fixed_version for f in parsed.findings} == {None}


@pytest.mark.parametrize("doc", [None, load_sample("legacy_dd_whole-report-null.json"), [], {}],
                         ids=["null", "null-sample", "empty-list", "empty-object"])
def test_documents_without_findings(doc):
    parsed = parse_report(doc)
    assert (parsed.findings, parsed.counts) == ([], ZERO)


@pytest.mark.parametrize("results", ["absent", None, []])
def test_results_absent_null_or_empty(results):
    doc = {"SchemaVersion": 2, "ArtifactName": "app:1"}
    if results != "absent":
        doc["Results"] = results
    assert parse_report(doc).counts == ZERO


def test_results_key_absent_sample():
    doc = load_sample("v2_scb_juice-shop-v12.10.2_Results-key-absent.json")
    assert "Results" not in doc
    assert parse_report(doc).counts == ZERO


@pytest.mark.parametrize("vulns", ["absent", None, []])
def test_vulnerabilities_absent_null_or_empty(vulns):
    res = {"Target": "app:1 (debian 12.4)", "Class": "os-pkgs"}
    if vulns != "absent":
        res["Vulnerabilities"] = vulns
    doc = report(res, result(vuln()))
    assert parse_report(doc).counts == counts(unknown=1)


@pytest.mark.parametrize("name", ["v2_dd_alpine-3.14_result-without-Vulnerabilities.json",
                                  "legacy_scb_amass_tag-at-digest_vulns-null.json"])
def test_vulnerabilities_absent_or_null_samples(name):
    assert parse_report(load_sample(name)).counts == ZERO


def test_blank_artifact_name_and_repo_tags():
    doc = load_sample("v2_dd_debian-10.13_all-8-Status-values_blank-ArtifactName.json")
    assert (doc["ArtifactName"], doc["Metadata"]["RepoTags"]) == ("", [""])
    assert parse_report(doc).counts == counts(low=8)
    with pytest.raises(ReportError) as err:
        name_of(doc)
    assert err.value.path == "images[0].image_name"
    assert "names no image" in err.value.message
    assert name_of(doc, "debian:10.13") == (
        "debian", "10.13", None, "sha256:22ae3921bdaac434bb4cb92dbbc209e46b1f3f70e9fa0b5fbbb43ce7d452c72d")


def test_powershell_wrapped_lists():
    doc = report(result(vuln(), vuln("CVE-2", Severity="HIGH")))
    doc["Results"] = {"value": doc["Results"], "Count": 1}
    doc["Results"]["value"][0]["Vulnerabilities"] = {"value": doc["Results"]["value"][0]["Vulnerabilities"],
                                                     "Count": 2}
    assert parse_report(doc).counts == counts(high=1, unknown=1)


# --- optional fields ------------------------------------------------------------------------


def test_only_the_required_fields():
    (finding,) = parse_report(report(result(vuln(), target="Node.js"))).findings
    assert finding == Finding(4, "CVE-2024-0001", "openssl", "", "Node.js", None, None, None, None)
    assert finding.severity == "UNKNOWN"


def test_optional_fields_null_count_as_absent():
    fields = dict.fromkeys(("InstalledVersion", "FixedVersion", "Severity", "Title", "Description",
                            "PkgPath"))
    doc = report({"Target": None, "Vulnerabilities": [vuln(**fields)]})
    (finding,) = parse_report(doc).findings
    assert finding == Finding(4, "CVE-2024-0001", "openssl", "", "", None, None, None, None)


def test_every_stored_field_is_kept():
    v = vuln(InstalledVersion="1.0", FixedVersion="1.1", Severity="Critical", Title="t",
             Description="d", PkgPath="usr/lib/app.jar", Class="ignored", Status="fixed")
    (finding,) = parse_report(report(result(v, target="Java"))).findings
    assert finding == Finding(0, "CVE-2024-0001", "openssl", "1.0", "Java", "usr/lib/app.jar",
                              "1.1", "t", "d")


def test_no_cvss_or_title_sample():
    parsed = parse_report(load_sample("v2_trivy-golden_gomod-repo_UNKNOWN-severity_range-fixedversions.json"))
    assert parsed.counts == counts(medium=1, unknown=4)
    assert sum(f.title is None for f in parsed.findings) == 1


def test_cvss_v4_only_sample():
    parsed = parse_report(load_sample("v2_dd_trivy-0.69.1_fs-jar_cvss-v4-only.json"))
    assert parsed.counts == counts(medium=1, low=2)


def test_no_status_no_class_sample():
    # Legacy Trivy wrote neither Class nor Status; 101 entries have no Title.
    parsed = parse_report(load_sample("legacy_scb_mediawiki-1.27.3_debian8_3.4MB_dups_unknown_null.json"))
    assert parsed.counts == counts(critical=49, high=535, medium=2010, low=260, unknown=7)


def test_free_text_fixed_version_kept_as_written():
    parsed = parse_report(load_sample("v2_trivy-golden_sbom-cyclonedx-input_fluentd_debian-gemspec.json"))
    assert parsed.counts == counts(critical=1, high=1, low=1)
    assert "6.0.3.1, 5.2.4.3" in {f.fixed_version for f in parsed.findings}
    ranges = parse_report(report(result(vuln(FixedVersion=">= 2.0, < 3.0 || ~4.1")))).findings
    assert ranges[0].fixed_version == ">= 2.0, < 3.0 || ~4.1"


@pytest.mark.parametrize("severity,rank", [
    ("CRITICAL", 0), ("high", 1), ("Medium", 2), ("lOw", 3), ("UNKNOWN", 4), ("", 4),
    ("NEGLIGIBLE", 4), (" HIGH", 4), ("HI\x00GH", 4), (None, 4)])
def test_severity_any_case_else_unknown(severity, rank):
    (finding,) = parse_report(report(result(vuln(Severity=severity)))).findings
    assert finding.severity_rank == rank


# --- target kinds ---------------------------------------------------------------------------


def test_misconfigurations_and_secrets_are_not_counted():
    parsed = parse_report(load_sample("v2_dd_fs_misconfig-and-secrets.json"))
    assert parsed.counts == counts(high=1, medium=1)
    assert keys(parsed) == [("CVE-2021-33503", "urllib3", "1.26.3", "requirements.txt"),
                            ("CVE-2021-28363", "urllib3", "1.26.3", "requirements.txt")]


def test_licenses_are_not_counted():
    assert parse_report(load_sample("v2_dd_alpine-3.11_licenses-only.json")).counts == ZERO


def test_os_and_language_packages_and_secrets_in_one_image():
    parsed = parse_report(load_sample("v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json"))
    assert parsed.counts == counts(critical=25, high=128, medium=67, low=16)
    assert len({f.target for f in parsed.findings}) == 2


def test_suppressed_findings_are_not_counted():
    res = result(vuln("CVE-1", Severity="HIGH"), ExperimentalModifiedFindings=[
        {"Type": "vulnerability", "Status": "ignored", "Statement": "not reachable",
         "Finding": vuln("CVE-2", Severity="CRITICAL")}])
    parsed = parse_report(report(res))
    assert parsed.counts == counts(high=1)
    assert keys(parsed) == [("CVE-1", "openssl", "", "app:1 (debian 12.4)")]


def test_custom_result_with_empty_target():
    parsed = parse_report(load_sample("v2_trivy-golden_spring4shell-jre11_jar_custom-empty-target.json"))
    assert parsed.counts == counts(critical=1)
    (finding,) = parsed.findings
    assert (finding.cve_id, finding.target, finding.pkg_path) == (
        "CVE-2022-22965", "Java",
        "usr/local/tomcat/webapps/helloworld.war/WEB-INF/lib/spring-beans-5.3.15.jar")


# --- finding identity -----------------------------------------------------------------------


def test_same_cve_on_several_packages():
    doc = report(result(vuln("CVE-1", "libssl"), vuln("CVE-1", "libcrypto"), vuln("CVE-1", "openssl")))
    assert len(parse_report(doc).findings) == 3


def test_same_package_at_several_paths_or_versions():
    parsed = parse_report(load_sample("v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json"))
    ajv = sorted((f.installed_version, f.pkg_path) for f in parsed.findings
                 if (f.cve_id, f.package_name) == ("CVE-2020-15366", "ajv"))
    assert [version for version, _ in ajv] == ["5.5.2", "6.12.2"]
    doc = report(result(vuln(InstalledVersion="1", PkgPath="a/x.jar"), vuln(InstalledVersion="1", PkgPath="b/x.jar"),
                        vuln(InstalledVersion="2", PkgPath="a/x.jar"), target="Java"))
    assert len(parse_report(doc).findings) == 3


def test_same_entry_in_several_targets():
    doc = report(result(vuln(), target="go.mod"), result(vuln(), target="submod/go.mod"))
    assert len(parse_report(doc).findings) == 2
    gomod = parse_report(load_sample("v2_trivy-golden_gomod-repo_UNKNOWN-severity_range-fixedversions.json"))
    assert sorted(f.target for f in gomod.findings if f.cve_id == "GMS-2022-20") == [
        "go.mod", "submod/go.mod", "submod2/go.mod"]


def test_repeated_entries_collapse_keeping_fix_and_highest_severity():
    doc = report(result(
        vuln(InstalledVersion="1.0", Severity="LOW"),
        vuln(InstalledVersion="1.0", Severity="HIGH", FixedVersion="1.1"),
        vuln(InstalledVersion="1.0", Severity="medium", FixedVersion=""),
    ))
    (finding,) = parse_report(doc).findings
    assert (finding.severity, finding.fixed_version) == ("HIGH", "1.1")
    reverse = report(result(vuln(FixedVersion="2.0", Severity="CRITICAL"), vuln(Severity="low")))
    (finding,) = parse_report(reverse).findings
    assert (finding.severity, finding.fixed_version) == ("CRITICAL", "2.0")


def test_mediawiki_repeats():
    parsed = parse_report(load_sample("legacy_scb_mediawiki-1.27.3_debian8_3.4MB_dups_unknown_null.json"))
    assert len(parsed.findings) == 2861
    perl = {f.package_name: f.fixed_version for f in parsed.findings if f.cve_id == "CVE-2018-6797"}
    assert perl == dict.fromkeys(("perl", "perl-base", "perl-modules"), "5.20.2-3+deb8u10")


def test_nul_characters_are_dropped_from_text():
    doc = report(result(vuln("CVE-\x001", "ssl\x00", Title="a\x00b", PkgPath="\x00"), target="t\x00"))
    (finding,) = parse_report(doc).findings
    assert (finding.cve_id, finding.package_name, finding.title, finding.target, finding.pkg_path) == (
        "CVE-1", "ssl", "ab", "t", None)


def test_content_hash_is_unambiguous():
    one = [Finding(4, "a\x1fb", "c", "", "t", None, None, None, None)]
    two = [Finding(4, "a", "b\x1fc", "", "t", None, None, None, None)]
    none_vs_text = [Finding(4, "a", "c", "", "t", None, "\x15", None, None)]
    absent = [Finding(4, "a", "c", "", "t", None, None, None, None)]
    assert len({content_hash(one), content_hash(two), content_hash(none_vs_text), content_hash(absent)}) == 4
    assert content_hash(absent) == content_hash(list(absent))


# --- malformed reports ----------------------------------------------------------------------


def test_sample_with_a_vulnerability_without_id():
    with pytest.raises(ReportError) as err:
        parse_report(load_sample("legacy_dd_mixed-targets_hand-edited_missing-fields.json"),
                     "images[0].scan_results")
    assert err.value.path == "images[0].scan_results[0].Vulnerabilities[0].VulnerabilityID"
    assert err.value.message == "is required and must be a string"


@pytest.mark.parametrize("doc,path", [
    ("text", "r"),
    (5, "r"),
    ({"Results": {"Target": "x"}}, "r.Results"),
    ({"Results": ["x"]}, "r.Results[0]"),
    ([{"Target": 5}], "r[0].Target"),
    (report(result(target=["x"])), "r.Results[0].Target"),
    (report({"Vulnerabilities": "System.Object[]"}), "r.Results[0].Vulnerabilities"),
    (report(result(vuln(), 7)), "r.Results[0].Vulnerabilities[1]"),
    (report(result(), result(vuln(), vuln(cve=None))), "r.Results[1].Vulnerabilities[1].VulnerabilityID"),
    (report(result(vuln(pkg=["a"]))), "r.Results[0].Vulnerabilities[0].PkgName"),
    (report(result(vuln(InstalledVersion=1.0))), "r.Results[0].Vulnerabilities[0].InstalledVersion"),
    (report(result(vuln(FixedVersion=["1", "2"]))), "r.Results[0].Vulnerabilities[0].FixedVersion"),
    (report(result(vuln(Severity=3))), "r.Results[0].Vulnerabilities[0].Severity"),
    (report(result(vuln(Title=True))), "r.Results[0].Vulnerabilities[0].Title"),
    (report(result(vuln(Description={}))), "r.Results[0].Vulnerabilities[0].Description"),
    (report(result(vuln(PkgPath=0))), "r.Results[0].Vulnerabilities[0].PkgPath"),
])
def test_wrong_types_name_their_path(doc, path):
    with pytest.raises(ReportError) as err:
        parse_report(doc, "r")
    assert err.value.path == path


def test_unknown_keys_and_odd_values_of_unstored_fields_are_ignored():
    v = vuln(CVSS={"ghsa": {"V40Score": 5.1}}, VendorSeverity=None, CweIDs="CWE-1", Status=7, Layer=[])
    doc = {"SchemaVersion": "two", "Metadata": "odd", "ArtifactName": 5,
           "Results": [{"Target": "x", "Class": None, "Packages": "none", "Vulnerabilities": [v]}]}
    assert parse_report(doc).counts == counts(unknown=1)
    # The entry names the image, so the report's odd names are never read.
    assert name_of(doc, "app:1", None, "sha256:abc") == ("app", "1", None, "sha256:abc")


# --- documents that are not image reports --------------------------------------------------


@pytest.mark.parametrize("doc,words", [
    (load_sample("k8s_pre-v0.42_dd_Vulnerabilities-Misconfigurations-lists.json"), ["trivy k8s", "ClusterName"]),
    (load_sample("k8s_v0.42plus_scb_Resources_with-Error_2.6MB.json"), ["trivy k8s", "ClusterName"]),
    ({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}, ["CycloneDX", "bomFormat"]),
    ({"spdxVersion": "SPDX-2.3", "packages": []}, ["SPDX", "spdxVersion"]),
    ({"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": []},
     ["SARIF", "runs"]),
], ids=["k8s-old", "k8s-new", "cyclonedx", "spdx", "sarif"])
def test_foreign_documents_are_named(doc, words):
    with pytest.raises(ReportError) as err:
        parse_report(doc, "images[0].scan_results")
    assert err.value.path == "images[0].scan_results"
    for word in words:
        assert word in err.value.message
    assert "trivy image -f json" in err.value.message


# --- image names ----------------------------------------------------------------------------


@pytest.mark.parametrize("ref,expected", [
    ("nginx", ("nginx", "latest", None)),
    ("nginx:1.25", ("nginx", "1.25", None)),
    ("ghcr.io/aquasecurity/trivy-test-images:alpine-310",
     ("ghcr.io/aquasecurity/trivy-test-images", "alpine-310", None)),
    ("registry.example.com:5000/team/app", ("registry.example.com:5000/team/app", "latest", None)),
    ("localhost:54321/alpine:3.10", ("localhost:54321/alpine", "3.10", None)),
    ("app@sha256:abc123", ("app", None, "sha256:abc123")),
    ("app:1.0@sha256:abc123", ("app", "1.0", "sha256:abc123")),
    ("host:5000/app:1.0@sha256:abc123", ("host:5000/app", "1.0", "sha256:abc123")),
    ("  nginx:1.25\n", ("nginx", "1.25", None)),
])
def test_parse_reference(ref, expected):
    assert parse_reference(ref) == expected


@pytest.mark.parametrize("ref,words", [
    ("", "empty image name"), ("app:", "empty image tag"), ("app@", "empty image digest"),
    (":1.0", "empty image name"), ("my app:1", "white space"), ("app:1\x00", "control"),
    ("app:1\x9b", "control"), ("a" * 513, "longer than 512"), ("app:" + "t" * 257, "longer than 256"),
])
def test_bad_references(ref, words):
    with pytest.raises(ReportError) as err:
        parse_reference(ref, "images[3].image_name")
    assert err.value.path == "images[3].image_name"
    assert words in err.value.message


def test_tarball_artifact_name_uses_repo_tags():
    assert name_of(load_sample(ALPINE_310)) == (
        "ghcr.io/aquasecurity/trivy-test-images", "alpine-310", None, ALPINE_310_ID)


def test_artifact_name_with_registry_port():
    doc = copy.deepcopy(load_sample(ALPINE_310))
    doc["ArtifactName"] = "localhost:54321/alpine:3.10"
    doc["Metadata"]["RepoTags"] = ["localhost:54321/alpine:3.10"]
    doc["Results"][0]["Target"] = "localhost:54321/alpine:3.10 (alpine 3.10.2)"
    assert name_of(doc) == ("localhost:54321/alpine", "3.10", None, ALPINE_310_ID)
    assert parse_report(doc).counts == counts(medium=4)
    del doc["Metadata"]["RepoTags"]
    assert name_of(doc)[:2] == ("localhost:54321/alpine", "3.10")


def test_plain_artifact_name():
    doc = load_sample("v2_scb_juice-shop-v10.2.0_alpine_node-pkg_secrets_863KB.json")
    assert name_of(doc) == ("bkimminich/juice-shop", "v10.2.0", None,
                            "sha256:21ef0dc04325e8ee21e385dc672460ed6b5c058cef1fedb84086ed5fca3f91cd")


def test_url_artifact_name_with_repo_tags():
    doc = copy.deepcopy(load_sample("v2_scb_repo-scan_github-url_gomod-npm-pip.json"))
    with pytest.raises(ReportError):
        name_of(doc)
    doc["Metadata"]["RepoTags"] = ["", "team/app:2.1", "team/app:latest"]
    assert name_of(doc) == ("team/app", "2.1", None, None)


@pytest.mark.parametrize("artifact", ["/tmp/image.tar", "./alpine.tar.gz", "C:\\images\\app.tar",
                                      "https://example.com/app", "image.tar.zst", "archive.zip"])
def test_path_like_artifact_names(artifact):
    doc = {"ArtifactName": artifact, "ArtifactType": "container_image",
           "Metadata": {"RepoTags": ["real/app:3"]}}
    assert name_of(doc) == ("real/app", "3", None, None)


def test_several_repo_tags_first_wins():
    doc = {"ArtifactName": "img.tar", "Metadata": {"RepoTags": {"value": ["a:1", "b:2"], "Count": 2},
                                                   "ImageID": "sha256:ff"}}
    assert name_of(doc) == ("a", "1", None, "sha256:ff")


def test_digest_is_the_image_id_when_none_other():
    assert name_of(None, "app@sha256:abc") == ("app", None, "sha256:abc", "sha256:abc")
    assert name_of(None, "app:1.0@sha256:abc") == ("app", "1.0", "sha256:abc", "sha256:abc")
    assert name_of(None, "app@sha256:abc", image_id="sha256:def") == ("app", None, "sha256:abc", "sha256:def")


def test_agent_short_id_expands_to_the_report_id():
    doc = load_sample(ALPINE_310)
    assert name_of(doc, "alpine:3.10", image_id="961769676411")[3] == ALPINE_310_ID
    assert name_of(doc, "alpine:3.10", image_id="123456789abc")[3] == "123456789abc"


@pytest.mark.parametrize("name,tag,expected", [
    ("registry.local", "5000/team/app:1.2", ("registry.local:5000/team/app", "1.2", None)),
    ("registry.local", "5000/team/app", ("registry.local:5000/team/app", "latest", None)),
    ("app", "1.0@sha256:abc", ("app", "1.0", "sha256:abc")),
    ("app@sha256", "abc", ("app", None, "sha256:abc")),
    ("app@sha256:abc", "1.0", ("app", "1.0", "sha256:abc")),
    ("nginx", "1.25", ("nginx", "1.25", None)),
])
def test_references_cut_at_the_first_colon_are_rejoined(name, tag, expected):
    assert name_of(None, name, tag)[:3] == expected


def test_image_id_checks():
    with pytest.raises(ReportError) as err:
        name_of(None, "app:1", image_id="x" * 161)
    assert err.value.path == "images[0].image_id"
    with pytest.raises(ReportError) as err:
        name_of({"ArtifactName": "app:1", "Metadata": {"ImageID": "sha\x01"}})
    assert err.value.path == "images[0].image_id"


@pytest.mark.parametrize("doc,path", [
    ({"ArtifactName": 5}, "images[0].scan_results.ArtifactName"),
    ({"ArtifactName": "x.tar", "Metadata": []}, "images[0].scan_results.Metadata"),
    ({"Metadata": {"RepoTags": "a:1"}}, "images[0].scan_results.Metadata.RepoTags"),
    ({"Metadata": {"RepoTags": ["", 1]}}, "images[0].scan_results.Metadata.RepoTags[1]"),
])
def test_bad_names_in_a_report_that_must_name_the_image(doc, path):
    with pytest.raises(ReportError) as err:
        name_of(doc)
    assert err.value.path == path
