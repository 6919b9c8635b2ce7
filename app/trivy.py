"""Trivy reports: shapes, image references, finding identity, severity.

Pure functions over already-decoded JSON (standard library only): a report
goes in, normalized findings and counts come out. Every rejection is a
``ReportError`` that carries the path of the offending value.
"""
import hashlib
import re
from typing import NamedTuple

# Changes whenever the same report would be read differently, so that results
# remembered by digest (see ingest.report_digest) are never reused across it.
PARSER_VERSION = "3"

SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "unknown": 4}
SEVERITY_NAMES = tuple(SEVERITY_RANK)

# Documents that are valid JSON but not an image report, by a key only they have.
FOREIGN_DOCUMENTS = (
    ("ClusterName", "a 'trivy k8s' cluster report"),
    ("bomFormat", "a CycloneDX SBOM"),
    ("spdxVersion", "an SPDX SBOM"),
    ("runs", "a SARIF log"),
)

# C0, DEL and C1: every character of Unicode category Cc.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_HEX = re.compile(r"[0-9a-fA-F]+")
_ARCHIVE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.zst|tar\.xz|tar\.bz2|zip|json|xml)$", re.I)

MAX_NAME = 512
MAX_TAG = 256
MAX_ID = 160


class ReportError(ValueError):
    """A malformed value; ``path`` names it (``images[0].scan_results...``)."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class Finding(NamedTuple):
    severity_rank: int
    cve_id: str
    package_name: str
    installed_version: str
    target: str
    pkg_path: str | None
    fixed_version: str | None
    title: str | None
    description: str | None

    @property
    def severity(self):
        return SEVERITY_NAMES[self.severity_rank].upper()


class ParsedReport(NamedTuple):
    findings: list
    counts: dict
    content_hash: str


class ImageRef(NamedTuple):
    name: str
    tag: str | None
    digest: str | None
    image_id: str | None

    @property
    def ref_key(self):
        return self.tag if self.tag is not None else "@" + (self.digest or "")


def unwrap(value):
    """Undo Windows PowerShell 5.1's ``{"value": [...], "Count": n}`` lists."""
    if (
        isinstance(value, dict)
        and isinstance(value.get("value"), list)
        and set(value) <= {"value", "Count"}
    ):
        return value["value"]
    return value


def clean_text(value):
    """Text as a database can hold it: NUL characters are dropped."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value


def severity_rank(value):
    """Trivy's Severity string in any case; anything else (or none) is unknown."""
    if isinstance(value, str):
        return SEVERITY_RANK.get(value.lower(), 4)
    return 4


def _optional_str(obj, key, path):
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReportError(f"{path}.{key}", f"must be a string, not {_type_name(value)}")
    return clean_text(value)


def _name_str(obj, key, path):
    """A string that names something: read as sent, so a NUL in it is rejected, not dropped."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ReportError(f"{path}.{key}", f"must be a string, not {_type_name(value)}")
    return value


def _list(value, path, what="a list"):
    value = unwrap(value)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportError(path, f"must be {what} or null, not {_type_name(value)}")
    return value


def _type_name(value):
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def document_results(doc, path):
    """The list of results of a report, whatever its shape."""
    doc = unwrap(doc)
    if doc is None:
        return []
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise ReportError(path, f"must be a Trivy JSON report (an object, a list or null), "
                                f"not {_type_name(doc)}")
    for key, what in FOREIGN_DOCUMENTS:
        if key in doc:
            raise ReportError(path, f"is {what} (it has '{key}'), not a Trivy image report; "
                                    "send the output of 'trivy image -f json'")
    return _list(doc.get("Results"), f"{path}.Results")


_OPTIONAL_FIELDS = ("InstalledVersion", "FixedVersion", "Title", "Description", "PkgPath", "Severity")


def _vulnerability_error(vuln, path):
    """The ReportError for a vulnerability the fast path refused, naming the first bad field."""
    if not isinstance(vuln, dict):
        return ReportError(path, f"must be an object, not {_type_name(vuln)}")
    for key in ("VulnerabilityID", "PkgName"):
        value = vuln.get(key)
        if not isinstance(value, str):
            return ReportError(f"{path}.{key}", "is required and must be a string"
                               if value is None else f"must be a string, not {_type_name(value)}")
    for key in _OPTIONAL_FIELDS:
        _optional_str(vuln, key, path)
    raise AssertionError("a valid vulnerability was refused")  # pragma: no cover


def parse_report(doc, path="scan_results"):
    """Validate a report and return its findings, counted as CONTRACT.md says.

    One finding per (VulnerabilityID, PkgName, InstalledVersion, location),
    location being PkgPath when present, else the result's Target; repeats
    merge into one with the highest severity and the non-empty FixedVersion.
    """
    merged = {}
    results_path = f"{path}.Results" if isinstance(unwrap(doc), dict) else path
    str_, none = str, None
    for r_index, result in enumerate(document_results(doc, path)):
        if not isinstance(result, dict):
            raise ReportError(f"{results_path}[{r_index}]", f"must be an object, not {_type_name(result)}")
        target = _optional_str(result, "Target", f"{results_path}[{r_index}]") or ""
        vulns = _list(result.get("Vulnerabilities"), f"{results_path}[{r_index}].Vulnerabilities")
        # The hot loop: a report can hold tens of thousands of entries, so the
        # checks are inlined and a path is only spelled out for an error.
        for v_index, vuln in enumerate(vulns):
            if type(vuln) is not dict:
                raise _vulnerability_error(vuln, f"{results_path}[{r_index}].Vulnerabilities[{v_index}]")
            get = vuln.get
            cve, pkg = get("VulnerabilityID"), get("PkgName")
            installed, fixed = get("InstalledVersion"), get("FixedVersion")
            title, description = get("Title"), get("Description")
            pkg_path, severity = get("PkgPath"), get("Severity")
            if not (type(cve) is str_ and type(pkg) is str_
                    and (installed is none or type(installed) is str_)
                    and (fixed is none or type(fixed) is str_)
                    and (title is none or type(title) is str_)
                    and (description is none or type(description) is str_)
                    and (pkg_path is none or type(pkg_path) is str_)
                    and (severity is none or type(severity) is str_)):
                raise _vulnerability_error(vuln, f"{results_path}[{r_index}].Vulnerabilities[{v_index}]")
            # Ranked as sent: " HIGH" or "HI\0GH" is not one of the five names.
            rank = severity_rank(severity)
            cve, pkg = clean_text(cve), clean_text(pkg)
            installed = clean_text(installed) if installed else ""
            fixed = clean_text(fixed) or None if fixed else None
            title = clean_text(title) or None if title else None
            description = clean_text(description) or None if description else None
            pkg_path = clean_text(pkg_path) or None if pkg_path else None
            key = (cve, pkg, installed, pkg_path if pkg_path is not None else target)
            seen = merged.get(key)
            if seen is None:
                merged[key] = [rank, cve, pkg, installed, target, pkg_path, fixed, title, description]
            else:
                if rank < seen[0]:
                    seen[0] = rank
                seen[6] = seen[6] or fixed
                seen[7] = seen[7] or title
                seen[8] = seen[8] or description
    findings = sorted((Finding(*f) for f in merged.values()), key=_order)
    counts = dict.fromkeys(SEVERITY_NAMES, 0)
    for finding in findings:
        counts[SEVERITY_NAMES[finding.severity_rank]] += 1
    return ParsedReport(findings, counts, content_hash(findings))


def _order(finding):
    """Detail order: severity (critical first), then cve_id, package, location."""
    return finding[:5] + (finding.pkg_path or "",)


def content_hash(findings):
    """SHA-256 of the normalized findings: equal results share one finding set.

    The encoding is unambiguous, so no choice of field text can make two
    different finding lists hash alike (finding sets are shared across
    organizations: a collision would show one organization's findings to
    another). Every field is written with a type letter ("s" text, "n" none,
    "i" number) and fields end with NUL, which no stored text holds (the
    parser drops it); a finding ends with a second NUL. Fed a thousand
    findings at a time, so a large report's encoding is never held whole.
    """
    findings = list(findings)
    digest = hashlib.sha256(b"findings-v3\n")
    for start in range(0, len(findings), 1000):
        digest.update("".join(
            "".join("n\0" if f is None else f"s{f}\0" if type(f) is str else f"i{f}\0" for f in finding) + "\0"
            for finding in findings[start:start + 1000]).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def parse_reference(ref, path="image_name"):
    """Split a Docker reference into (name, tag, digest).

    The tag follows the last ':' after the last '/', so a registry's port is
    never a tag; no tag and no digest means ``latest``.
    """
    ref = ref.strip()
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not digest:
            raise ReportError(path, "has an empty image digest after '@'")
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1:]
        if not tag:
            raise ReportError(path, "has an empty image tag after ':'")
    else:
        name, tag = ref, None
    if tag is None and digest is None:
        tag = "latest"
    _check_ref_part(name, path, "image name", MAX_NAME)
    if tag is not None:
        _check_ref_part(tag, path, "image tag", MAX_TAG)
    if digest is not None:
        _check_ref_part(digest, path, "image digest", MAX_ID)
    return name, tag, digest


def _check_ref_part(value, path, what, limit):
    if not value:
        raise ReportError(path, f"has an empty {what}")
    if _WHITESPACE_OR_CONTROL.search(value):
        raise ReportError(path, f"{what} {value[:80]!r} holds white space or control characters")
    if len(value) > limit:
        raise ReportError(path, f"{what} is longer than {limit} characters")


def _looks_like_path(name, artifact_type):
    if artifact_type not in (None, "", "container_image"):
        return True
    return ("://" in name or name.startswith(("/", ".", "~")) or "\\" in name
            or bool(_ARCHIVE.search(name)) or bool(_WHITESPACE_OR_CONTROL.search(name)))


def _metadata(doc, path):
    """A schema-2 report's ``Metadata`` object, or None."""
    meta = doc.get("Metadata") if isinstance(doc, dict) else None
    if meta is not None and not isinstance(meta, dict):
        raise ReportError(f"{path}.Metadata", f"must be an object, not {_type_name(meta)}")
    return meta


def report_name(doc, path):
    """(the reference a report names its image by, its path), or (None, None).

    ``ArtifactName`` when it is an image reference; when it is a file path,
    a URL or blank, the first non-blank of ``Metadata.RepoTags``.
    """
    doc = unwrap(doc)
    if not isinstance(doc, dict):
        return None, None
    name = _name_str(doc, "ArtifactName", path)
    artifact_type = doc.get("ArtifactType") if isinstance(doc.get("ArtifactType"), str) else None
    if name and name.strip() and not _looks_like_path(name.strip(), artifact_type):
        return name, f"{path}.ArtifactName"
    meta = _metadata(doc, path) or {}
    tags = _list(meta.get("RepoTags"), f"{path}.Metadata.RepoTags")
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise ReportError(f"{path}.Metadata.RepoTags[{i}]",
                              f"must be a string, not {_type_name(tag)}")
        if tag.strip():
            return tag, f"{path}.Metadata.RepoTags[{i}]"
    if name and _CONTROL.search(name):
        raise ReportError(f"{path}.ArtifactName", "holds control characters")
    return None, None


def report_image_id(doc):
    """``Metadata.ImageID`` of a schema-2 report, or None.

    Only a fallback for an entry that names its image but not its id: odd
    metadata there is ignored rather than failing a report that counts fine.
    """
    doc = unwrap(doc)
    meta = doc.get("Metadata") if isinstance(doc, dict) else None
    image_id = meta.get("ImageID") if isinstance(meta, dict) else None
    return image_id if isinstance(image_id, str) and image_id else None


def trivy_version(doc):
    """``Trivy.Version`` of a recent report, when it is a short string."""
    doc = unwrap(doc)
    info = doc.get("Trivy") if isinstance(doc, dict) else None
    version = info.get("Version") if isinstance(info, dict) else None
    if isinstance(version, str) and 0 < len(version) <= 64 and not _CONTROL.search(version):
        return version
    return None


def _cut_at_first_colon(image_name, image_tag):
    """True when an agent cut one reference at its first ':' into name and tag.

    A real tag holds none of '/', ':' and '@' (``registry:5000/app:1`` gives
    the "tag" ``5000/app:1``); a name that ends in ``@sha256`` lost its digest
    to the tag (``app@sha256:<hex>``).
    """
    if any(c in image_tag for c in "/:@"):
        return True
    return "@" in image_name and ":" not in image_name.rsplit("@", 1)[1]


def resolve_image(image_name, image_tag, image_id, doc, path, report_path):
    """Name an image from the request entry and its report (CONTRACT.md).

    The report's own names are read only when the entry leaves them out, so
    a report whose metadata is odd still ingests under the name it was sent.
    """
    if image_name:
        ref, ref_path = image_name, f"{path}.image_name"
        if image_tag and _cut_at_first_colon(image_name, image_tag):
            ref, image_tag = f"{image_name}:{image_tag}", None
    else:
        ref, ref_path = report_name(doc, report_path)
        if ref is None:
            raise ReportError(f"{path}.image_name", "is missing and the report names no image "
                              "(no usable ArtifactName or Metadata.RepoTags)")
    name, tag, digest = parse_reference(ref, ref_path)
    if image_tag:
        _check_ref_part(image_tag, f"{path}.image_tag", "image tag", MAX_TAG)
        tag = image_tag
    if image_id and _HEX.fullmatch(image_id):
        # An agent's 12-character short id: the report's full id when it matches.
        meta_id = report_image_id(doc)
        if meta_id and meta_id.split(":", 1)[-1].lower().startswith(image_id.lower()):
            image_id = meta_id
    elif not image_id:
        image_id = report_image_id(doc) or digest
    if image_id is not None:
        if _CONTROL.search(image_id):
            raise ReportError(f"{path}.image_id", "holds control characters")
        if len(image_id) > MAX_ID:
            raise ReportError(f"{path}.image_id", f"is longer than {MAX_ID} characters")
    return ImageRef(name, tag, digest, image_id or None)
