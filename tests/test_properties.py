"""Property test: random Trivy-shaped documents through HTTP, against the independent count."""
import json

import pytest
from conftest import Factory, empty_tables
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from independent_count import expected_counts
from sqlalchemy import func, select

from app.extensions import db, limiter
from app.models import Finding, Host, HostImage

# The composed strategies have a long repr; Hypothesis warns about building it.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

SEVERITIES = ("critical", "high", "medium", "low", "unknown")
ABSENT = object()

# Small pools make repeated keys likely; NUL, non-ASCII and (rarely) lone surrogates included.
_odd_text = st.text(st.characters(codec=None, categories=None), max_size=6)
_text = st.one_of(st.sampled_from(["", "a", "b", "a\x00", "\x00", "é", "日本", "CVE-1", "x y"]), _odd_text)
_wrong = st.one_of(st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                   st.lists(st.integers(0, 2), max_size=2), st.dictionaries(st.sampled_from(["x", "Foo"]),
                                                                            st.integers(), max_size=1))
_severity = st.sampled_from(["CRITICAL", "high", "Medium", "lOW", "UNKNOWN", "", "bogus", " HIGH", "HI\x00GH",
                             "NEGLIGIBLE"])


def _mostly(value, absent=0, null=0, wrong=0):
    """``value``, else absent / null / a value of a wrong type, each with the odds out of 100 given."""
    def pick(n):
        # Hypothesis favours the ends of a range, so both ends give ``value``.
        n = n % 1000 // 10
        if n < 100 - wrong - absent - null:
            return value
        if n < 100 - wrong - absent:
            return st.none()
        if n < 100 - wrong:
            return st.just(ABSENT)
        return _wrong
    return st.integers(0, 1000).flatmap(pick)


def _maybe(value):
    """An optional field: often absent or null, rarely of a wrong type."""
    return _mostly(value, absent=20, null=8, wrong=2)


def _required(value):
    return _mostly(value, absent=2, null=2, wrong=2)


def _object(**fields):
    """A dict whose fields may each be absent (ABSENT values are dropped)."""
    return st.fixed_dictionaries(fields).map(lambda d: {k: v for k, v in d.items() if v is not ABSENT})


_vuln = _mostly(
    _object(
        VulnerabilityID=_required(st.sampled_from(["CVE-1", "CVE-2", "CVE-\x002", "GMS-1"]) | _text),
        PkgName=_required(st.sampled_from(["openssl", "libssl", "open\x00ssl"]) | _text),
        InstalledVersion=_maybe(st.sampled_from(["1.0", "1.0\x00", "2.0"]) | _text),
        FixedVersion=_maybe(st.sampled_from(["1.1", "", "1.1, 2.0", ">= 3"]) | _text),
        Severity=_maybe(_severity),
        Title=_maybe(_text),
        Description=_maybe(_text),
        PkgPath=_maybe(st.sampled_from(["", "a/x.jar", "\x00", "b/x.jar"]) | _text),
        Status=_maybe(st.sampled_from(["fixed", "affected"])),
        CVSS=_maybe(st.just({"nvd": {"V3Score": 9.8}})),
    ),
    wrong=2,
)


def _with_repeats(items):
    """A list, sometimes with some of its own entries repeated."""
    return st.lists(items, max_size=5).flatmap(
        lambda xs: st.lists(st.sampled_from(xs), max_size=3).map(lambda extra: xs + extra) if xs else st.just(xs))


_result = _mostly(
    _object(
        Target=_maybe(st.sampled_from(["app (debian 12)", "Node.js", "", "t\x00"]) | _text),
        Class=_maybe(st.sampled_from(["os-pkgs", "lang-pkgs", "secret", "config", "license"])),
        Vulnerabilities=_maybe(_with_repeats(_vuln)),
        ExperimentalModifiedFindings=_maybe(st.lists(st.fixed_dictionaries({"Finding": _vuln}), max_size=2)),
        Misconfigurations=_maybe(st.lists(st.fixed_dictionaries({"Severity": _severity}), max_size=2)),
    ),
    wrong=2,
)
_extra_keys = st.dictionaries(
    st.sampled_from(["SchemaVersion", "ArtifactName", "Metadata", "Trivy", "SchemaVersion", "ArtifactName",
                     "Metadata", "Unknown\x00", "é", "SchemaVersion", "ArtifactName", "Metadata", "Trivy",
                     "ClusterName", "runs", "bomFormat", "spdxVersion"]),
    st.one_of(st.none(), _text, _wrong), max_size=2)

_document = st.one_of(
    st.none(),
    _with_repeats(_result),
    st.tuples(_maybe(_with_repeats(_result)), _extra_keys).map(
        lambda t: {**t[1], **({} if t[0] is ABSENT else {"Results": t[0]})}),
    st.tuples(_with_repeats(_result), _extra_keys).map(lambda t: {**t[1], "Results": t[0]}),
    _wrong,
)


def _has_surrogate(node):
    if isinstance(node, str):
        return any("\ud800" <= c <= "\udfff" for c in node)
    if isinstance(node, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_has_surrogate(v) for v in node)
    return False


def _stored():
    return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Host, HostImage, Finding))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(doc=_document, form=st.sampled_from(["scan_results", "trivy_output", "bare"]))
def test_random_reports(client, doc, form):
    empty_tables()
    limiter.reset()
    key = Factory().key(Factory().org())
    if form == "bare":
        url = "/api/agent/container-scan?hostname=web-1&image_name=app:1"
        body = doc
    else:
        url = "/api/agent/container-scan"
        body = {"hostname": "web-1", "images": [{"image_name": "app:1", form: doc}]}
    # ensure_ascii writes a lone surrogate as the escape \udXXX, as a careless client would.
    response = client.post(url, data=json.dumps(body, ensure_ascii=True), headers={"X-API-Key": key})
    assert response.status_code < 500
    event(f"{response.status_code} total={(expected_counts(doc) or {}).get('total')}")
    payload = response.get_json()
    expected = None if _has_surrogate(doc) else expected_counts(doc)
    if form == "bare" and isinstance(doc, (str, int, float, bool)):
        expected = None  # a bare body must be a JSON object, a list or null
    if expected is None:
        assert response.status_code == 400, payload
        assert set(payload) <= {"error", "message", "details"} and payload["message"]
        assert _stored() == (0, 0, 0)
        return
    assert response.status_code == 200, payload
    assert payload["vulnerabilities_found"] == expected["total"]
    row = db.session.execute(select(HostImage)).scalar_one()
    assert {s: getattr(row, s) for s in SEVERITIES} == {s: expected[s] for s in SEVERITIES}
    assert _stored() == (1, 1, expected["total"])
