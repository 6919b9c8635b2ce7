"""Request bodies as the shipped SentriKat agents build them (test helpers).

Standard library only; no import from `app`. See shared/spec/CONTRACT.md,
"The agents that already ship". Both agents send the second form of the
request body:

    {"agent_id", "hostname", "scanner": "trivy", "scanner_version",
     "images": [{"image_name", "image_tag", "image_id" (12 hex chars),
                 "trivy_output": <the Trivy report>}]}

with the headers `X-Agent-Key: <key>` and `Content-Type: application/json`
(see `agent_headers`). The two differ in how they split the image reference
and in how the JSON comes out:

* bash: splits the reference at its FIRST ':' (`${ref%%:*}` / `${ref#*:}`), so
  `registry.local:5000/team/app:1.2` becomes image_name `registry.local` and
  image_tag `5000/team/app:1.2`; the report is passed through untouched.
* Windows PowerShell 5.1: splits the reference properly, and re-serializes the
  report with `ConvertTo-Json -Depth 20`, which (with the ETS type data that
  5.1 carries for arrays) writes every array as `{"value": [...], "Count": n}`
  and writes dates as `/Date(<epoch ms>)/` or as local time with an offset.
"""

import copy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

SCANNER_VERSION = "0.58.2"
ISO_DATE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)
# Offsets used, in turn, for the reformatted (non-/Date/) date strings.
OFFSETS = (timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30))
PS_DEPTH = 20


def agent_headers(key):
    """Headers both agents send: the key in X-Agent-Key (not X-API-Key)."""
    return {"X-Agent-Key": key, "Content-Type": "application/json"}


def _agent_id(hostname):
    """A stable uuid-like agent id (the real agents persist a random uuid4)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, hostname))


def _envelope(hostname, image):
    return {
        "agent_id": _agent_id(hostname),
        "hostname": hostname,
        "scanner": "trivy",
        "scanner_version": SCANNER_VERSION,
        "images": [image],
    }


def bash_body(doc, reference, hostname, short_id):
    """Body of the bash agent; send it with `agent_headers(key)`.

    The reference is cut at its first ':' (a registry port becomes part of
    the "tag"); no ':' gives the tag "latest". `short_id` is passed as is
    (the agent sends `docker images --no-trunc=false` style 12 hex chars,
    without "sha256:"). The report `doc` is sent unchanged (a deep copy).
    """
    name, sep, tag = reference.partition(":")
    image = {
        "image_name": name,
        "image_tag": tag if sep else "latest",
        "image_id": short_id,
        "trivy_output": copy.deepcopy(doc),
    }
    return _envelope(hostname, image)


def split_reference(reference):
    """(repository, tag or None, digest or None), Docker's way.

    The digest follows '@'; the tag follows the last ':' after the last '/'.
    """
    rest, _, digest = reference.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def powershell_body(doc, reference, hostname, short_id, wrap_arrays=True):
    """Body of the Windows PowerShell 5.1 agent, as a parsed JSON value.

    Send it with `agent_headers(key)` (or as text: `powershell_json(body)`).
    image_name is the repository (with "@<digest>" kept when the reference
    has one), image_tag the tag, or "latest" when there is neither tag nor
    digest; with a digest and no tag the key image_tag is left out.

    The whole body (envelope included) goes through `ps_convert`: with
    wrap_arrays every array becomes {"value": [...], "Count": n}; ISO-8601
    date strings become "/Date(<ms>)/" and "<local time><offset>" in turn.
    """
    repo, tag, digest = split_reference(reference)
    image = {"image_name": repo + ("@" + digest if digest else "")}
    if tag is not None:
        image["image_tag"] = tag
    elif digest is None:
        image["image_tag"] = "latest"
    image["image_id"] = short_id
    image["trivy_output"] = doc
    return ps_convert(_envelope(hostname, image), wrap_arrays=wrap_arrays)


def severity_filtered(doc, severities=("HIGH", "CRITICAL")):
    """The report `trivy image --severity HIGH,CRITICAL -f json` would have written.

    Trivy drops the vulnerabilities of other severities and, as the field is
    `omitempty`, leaves out a result's "Vulnerabilities" once none is left.
    Works on schema-2 reports and on legacy top-level lists; `doc` is not changed.
    """
    doc = copy.deepcopy(doc)
    results = doc if isinstance(doc, list) else (doc or {}).get("Results") or []
    for result in results:
        kept = [v for v in result.get("Vulnerabilities") or [] if v.get("Severity") in severities]
        if kept:
            result["Vulnerabilities"] = kept
        else:
            result.pop("Vulnerabilities", None)
    return doc


def ps_convert(value, wrap_arrays=True, depth=PS_DEPTH):
    """What `ConvertTo-Json -Depth <depth>` in Windows PowerShell 5.1 makes of value.

    Past `depth` nested objects, PowerShell writes an object's ToString()
    instead of the object ("@{key=value; ...}" for an object,
    "System.Object[]" for an array); that is imitated roughly.
    """
    counter = [0]

    def date(text):
        match = ISO_DATE.match(text)
        if not match:
            return text
        base, frac, zone = match.groups()
        frac = (frac or ".0")[1:7].ljust(6, "0")  # Python keeps microseconds only
        zone = "+00:00" if zone == "Z" else zone
        moment = datetime.fromisoformat(f"{base}.{frac}{zone}")
        i = counter[0]
        counter[0] += 1
        if i % 2 == 1:
            try:
                local = moment.astimezone(timezone(OFFSETS[(i // 2) % len(OFFSETS)]))
                return local.replace(microsecond=0).isoformat()
            except OverflowError:
                pass  # near year 1 or 9999: fall back to the /Date/ form
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return f"/Date({(moment - epoch) // timedelta(milliseconds=1)})/"

    def convert(node, level):
        if isinstance(node, (dict, list)) and level > depth:
            if isinstance(node, list):
                return "System.Object[]"
            return "@{" + "; ".join(f"{k}={v}" for k, v in node.items()) + "}"
        if isinstance(node, dict):
            return {k: convert(v, level + 1) for k, v in node.items()}
        if isinstance(node, list):
            items = [convert(v, level + 1) for v in node]
            return {"value": items, "Count": len(items)} if wrap_arrays else items
        if isinstance(node, str):
            return date(node)
        return node

    return convert(value, 0)


def powershell_json(body):
    """The body as text the way 5.1 writes it: '\\/Date(...)\\/' and \\u003c-style escapes."""
    text = json.dumps(body, ensure_ascii=False, indent=4)
    for char in "<>&'":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return re.sub(r'"/Date\((-?\d+)\)/"', r'"\\/Date(\1)\\/"', text)


def unwrap_arrays(node):
    """Undo the {"value": [...], "Count": n} wrapping (for checks)."""
    if isinstance(node, dict):
        if set(node) == {"value", "Count"} and isinstance(node["value"], list):
            return [unwrap_arrays(v) for v in node["value"]]
        return {k: unwrap_arrays(v) for k, v in node.items()}
    if isinstance(node, list):
        return [unwrap_arrays(v) for v in node]
    return node


if __name__ == "__main__":
    from pathlib import Path

    from independent_count import expected_counts

    fixture = (
        Path(__file__).parent
        / "fixtures"
        / "trivy"
        / "v2_trivy-golden_alpine-3.10_newest-fields.json"
    )
    report = json.loads(fixture.read_text(encoding="utf-8"))
    ref = "registry.local:5000/team/app:1.2"

    b = bash_body(report, ref, "host-01", "961769676411")
    img = b["images"][0]
    assert (img["image_name"], img["image_tag"]) == (
        "registry.local",
        "5000/team/app:1.2",
    ), img
    assert img["trivy_output"] == report and img["trivy_output"] is not report
    assert bash_body(None, "nginx", "h", "0" * 12)["images"][0]["image_tag"] == "latest"
    assert uuid.UUID(b["agent_id"])

    assert split_reference(ref) == ("registry.local:5000/team/app", "1.2", None)
    assert split_reference("registry.local:5000/team/app") == (
        "registry.local:5000/team/app",
        None,
        None,
    )
    assert split_reference("app:1.0@sha256:ab") == ("app", "1.0", "sha256:ab")

    p = powershell_body(report, ref, "host-01", "961769676411")
    text = json.dumps(p)
    assert p["images"]["Count"] == 1
    img = p["images"]["value"][0]
    assert (img["image_name"], img["image_tag"]) == (
        "registry.local:5000/team/app",
        "1.2",
    ), img
    out = img["trivy_output"]
    assert set(out["Results"]) == {"value", "Count"}
    assert "RepoTags" in out["Metadata"] and set(out["Metadata"]["RepoTags"]) == {
        "value",
        "Count",
    }

    def bare_lists(node):
        """Arrays that are not the "value" of a {"value", "Count"} wrapper."""
        if isinstance(node, dict):
            wrapper = set(node) == {"value", "Count"}
            for key, child in node.items():
                if isinstance(child, list) and not (wrapper and key == "value"):
                    yield child
                yield from bare_lists(child)
        elif isinstance(node, list):
            for child in node:
                if isinstance(child, list):
                    yield child
                yield from bare_lists(child)

    assert not list(bare_lists(p)), "an array was left unwrapped"
    assert list(
        bare_lists(powershell_body(report, ref, "h", "0" * 12, wrap_arrays=False))
    )
    assert "/Date(" in text and re.search(
        r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"', text
    )
    # every UTC ("...Z") date string was rewritten
    assert not re.search(r'"\d{4}-\d\d-\d\dT[^"]*Z"', text)
    assert '"\\/Date(' in powershell_json(p)
    assert ps_convert("2019-08-19T08:14:04.245936626Z") == "/Date(1566202444245)/"
    assert ps_convert(
        ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"], wrap_arrays=False
    ) == ["/Date(-62135596800000)/", "0001-01-01T02:00:00+02:00"]

    back = unwrap_arrays(p)["images"][0]["trivy_output"]
    assert (
        expected_counts(back)
        == expected_counts(report)
        == {"critical": 0, "high": 0, "medium": 4, "low": 0, "unknown": 0, "total": 4}
    )
    high_only = severity_filtered(report)
    assert expected_counts(high_only)["total"] == 0 and report != high_only
    assert all("Vulnerabilities" not in r for r in high_only["Results"])
    assert expected_counts(report)["total"] == 4  # the original is untouched
    flat = powershell_body(report, "nginx", "h", "0" * 12, wrap_arrays=False)
    assert (
        isinstance(flat["images"], list) and flat["images"][0]["image_tag"] == "latest"
    )
    assert (
        "image_tag"
        not in powershell_body(None, "app@sha256:ab", "h", "0" * 12)["images"]["value"][
            0
        ]
    )
    print("agent_bodies self-check: ok")
