"""Independent test oracle: count the findings of a raw Trivy document.

Standard library only and deliberately independent of `app`: it restates the
"Findings of an image" and "Report shapes" rules of shared/spec/CONTRACT.md in
the plainest code possible, so that the app's counts can be checked against it.

    expected_counts(doc) -> {"critical", "high", "medium", "low", "unknown",
                             "total"} or None (the document must be rejected)

Run it as a script to print the counts of every fixture in fixtures/trivy/.
"""

import json
import sys
from pathlib import Path

SEVERITIES = ("critical", "high", "medium", "low", "unknown")  # highest first
# Top-level keys of documents that are rejected: trivy k8s, CycloneDX, SPDX, SARIF.
REJECTED_KEYS = ("ClusterName", "bomFormat", "spdxVersion", "runs")
REQUIRED_STRINGS = ("VulnerabilityID", "PkgName")
OPTIONAL_STRINGS = (
    "InstalledVersion",
    "FixedVersion",
    "Severity",
    "Title",
    "Description",
    "PkgPath",
)


def severity_of(vuln):
    """Trivy's Severity string, any case; anything else (or none) is unknown."""
    sev = vuln.get("Severity")
    sev = sev.lower() if isinstance(sev, str) else "unknown"
    return sev if sev in SEVERITIES else "unknown"


def expected_counts(doc):
    """Counts per severity plus total, or None when the document is rejected (400).

    An optional field whose value is JSON null counts as absent (Trivy omits
    empty fields; a null says the same). NUL characters, which no database
    text column holds, are dropped from the key, as the service stores them.
    """
    # 1. Which shape is it?
    if doc is None:
        results = []  # old Trivy wrote `null` for "nothing found"
    elif isinstance(doc, list):
        results = doc  # legacy: a top-level list of results
    elif isinstance(doc, dict):
        if any(key in doc for key in REJECTED_KEYS):
            return None
        results = doc.get("Results")
        if results is None:
            results = []
    else:
        return None
    if not isinstance(results, list):
        return None

    # 2. Collect findings: key -> highest severity seen for that key.
    findings = {}
    for result in results:
        if not isinstance(result, dict):
            return None
        target = result.get("Target")
        if target is not None and not isinstance(target, str):
            return None
        vulns = result.get("Vulnerabilities")
        if vulns is None:
            vulns = []
        if not isinstance(vulns, list):
            return None
        for vuln in vulns:
            if not isinstance(vuln, dict):
                return None
            if not all(isinstance(vuln.get(f), str) for f in REQUIRED_STRINGS):
                return None
            if any(
                vuln.get(f) is not None and not isinstance(vuln[f], str) for f in OPTIONAL_STRINGS
            ):
                return None
            # location: PkgPath when present and non-empty, else the result's Target
            location = (vuln.get("PkgPath") or "").replace("\x00", "") or target or ""
            key = tuple(
                part.replace("\x00", "")
                for part in (
                    vuln["VulnerabilityID"],
                    vuln["PkgName"],
                    vuln.get("InstalledVersion") or "",
                    location,
                )
            )
            sev = severity_of(vuln)
            old = findings.get(key)
            if old is None or SEVERITIES.index(sev) < SEVERITIES.index(old):
                findings[key] = sev

    # 3. Count.
    counts = {sev: 0 for sev in SEVERITIES}
    for sev in findings.values():
        counts[sev] += 1
    counts["total"] = len(findings)
    return counts


def main(argv):
    folder = Path(__file__).parent / "fixtures" / "trivy"
    paths = [Path(a) for a in argv] or sorted(folder.glob("*.json"))
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        print(f"{path.name}\t{json.dumps(expected_counts(doc))}")


if __name__ == "__main__":
    main(sys.argv[1:])
