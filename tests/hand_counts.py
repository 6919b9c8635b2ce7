"""Hand-checked finding counts of some fixtures in fixtures/trivy/.

How they were checked (NOT with tests/independent_count.py, NOT with `app`):

* Small files: every vulnerability was listed with
  `jq -r '.Results[] | .Target as $t | (.Vulnerabilities // [])[] |
  [$t, .VulnerabilityID, .PkgName, .InstalledVersion, .PkgPath, .Severity] | @tsv'`
  (for a legacy list: `.[]` instead of `.Results[]`), and the rows were read
  and counted by eye: no two rows share (ID, package, version, location), so
  each row is one finding. As a second, parse-free check, `grep -o
  '"VulnerabilityID"' FILE | wc -l` gave the same number of entries and
  `grep -oE '"Severity": *"[A-Za-z]+"' | sort | uniq -c` the same severities
  (except in the misconfig-and-secrets file, where 3 of the 5 "Severity"
  strings belong to a misconfiguration and two secrets, which are not counted).
* legacy_dd_debian-10.8...: 93 rows listed with jq, `cut -f1-5 | sort -u`
  gives 93 distinct keys (so no duplicates), severities by `uniq -c`, and the
  raw grep for `"Severity": "X"` agrees (18/65/9/1). DefectDojo's own unit
  test says 93 findings.
* legacy_scb_mediawiki...: 2,871 rows listed with jq; `sort | uniq -d` on the
  key columns finds 10 keys that occur twice (CVE-2018-6797 on perl,
  perl-base, perl-modules, whose copies differ only in FixedVersion, and 7
  fully identical pairs in extensions/PdfHandler/Gemfile.lock); every pair
  has the same severity; an awk pass keeping the highest severity per key
  gives the numbers below (2,871 - 10 = 2,861).
"""

HAND_COUNTS = {
    "v2_trivy-golden_alpine-3.10_newest-fields.json": {
        # CVE-2019-1549 and CVE-2019-1551, each on libcrypto1.1 and libssl1.1: 4 x MEDIUM
        "critical": 0,
        "high": 0,
        "medium": 4,
        "low": 0,
        "unknown": 0,
        "total": 4,
    },
    "v2_trivy-golden_amazon-2.json": {
        # curl CVE-2019-5481 MEDIUM, curl CVE-2019-5436 LOW
        "critical": 0,
        "high": 0,
        "medium": 1,
        "low": 1,
        "unknown": 0,
        "total": 2,
    },
    "legacy_dd_debian-10.8_type-field_cvss_all-unfixed.json": {
        # one target, 93 distinct keys
        "critical": 0,
        "high": 18,
        "medium": 9,
        "low": 65,
        "unknown": 1,
        "total": 93,
    },
    "v2_trivy-golden_gomod-repo_UNKNOWN-severity_range-fixedversions.json": {
        # GMS-2022-20 in go.mod, submod/go.mod, submod2/go.mod (3 targets -> 3 findings, UNKNOWN),
        # CVE-2021-38561 UNKNOWN, CVE-2022-23628 MEDIUM
        "critical": 0,
        "high": 0,
        "medium": 1,
        "low": 0,
        "unknown": 4,
        "total": 5,
    },
    "v2_trivy-golden_spring4shell-jre11_jar_custom-empty-target.json": {
        # only CVE-2022-22965 spring-beans (Target "Java", PkgPath in a .war); os-pkgs has no
        # Vulnerabilities key; the Target "" custom result has none
        "critical": 1,
        "high": 0,
        "medium": 0,
        "low": 0,
        "unknown": 0,
        "total": 1,
    },
    "v2_trivy-golden_ubi-7_redhat_will_not_fix_python-pkg.json": {
        # bash CVE-2019-18276 LOW (will_not_fix), setuptools CVE-2022-40897 HIGH (Target "Python")
        "critical": 0,
        "high": 1,
        "medium": 0,
        "low": 1,
        "unknown": 0,
        "total": 2,
    },
    "v2_trivy-golden_ubuntu-18.04_affected-no-fix.json": {
        # bash CVE-2019-18276 LOW; CVE-2019-5094 on e2fsprogs, libcom-err2, libext2fs2, libss2 MEDIUM
        "critical": 0,
        "high": 0,
        "medium": 4,
        "low": 1,
        "unknown": 0,
        "total": 5,
    },
    "v2_dd_fs_misconfig-and-secrets.json": {
        # urllib3 CVE-2021-33503 HIGH, CVE-2021-28363 MEDIUM; the misconfiguration (HIGH) and the
        # two secrets (CRITICAL) are not counted
        "critical": 0,
        "high": 1,
        "medium": 1,
        "low": 0,
        "unknown": 0,
        "total": 2,
    },
    "legacy_scb_mediawiki-1.27.3_debian8_3.4MB_dups_unknown_null.json": {
        # 2,871 entries, 10 repeated keys (see the docstring)
        "critical": 49,
        "high": 535,
        "medium": 2010,
        "low": 260,
        "unknown": 7,
        "total": 2861,
    },
}
