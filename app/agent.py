"""Agent blueprint: hosts submit Trivy scans of their images."""
from flask import Blueprint, current_app, request

from . import ingest, trivy
from .auth import agent_auth
from .body import read_json_body
from .errors import APIError
from .extensions import limiter
from .schemas import submission_schema

bp = Blueprint("agent", __name__, url_prefix="/api/agent")


def _agent_limit():
    return current_app.config["AGENT_RATE_LIMIT"]


def _agent_limit_key():
    return f"agent-key:{agent_auth.current_user().id}"


def envelope_of(body, args):
    """The submission envelope: the body itself, or a bare report wrapped as one image."""
    if isinstance(body, dict) and ("images" in body or "hostname" in body):
        if "hostname" not in body and args.get("hostname") is not None:
            body = dict(body, hostname=args["hostname"])
        return body, False
    if isinstance(body, (str, int, float, bool)):
        raise APIError(400, "The request body must be a JSON object: the {hostname, images} "
                            "envelope, or a Trivy report with ?hostname=HOST.")
    if args.get("hostname") is None:
        raise APIError(400, "Missing hostname: a bare Trivy report needs ?hostname=HOST "
                            "(or send the {hostname, images} envelope).",
                       {"hostname": ["Missing data for required field."]})
    image = {"scan_results": body}
    for key in ("image_name", "image_tag", "image_id"):
        if args.get(key):
            image[key] = args[key]
    return {"hostname": args["hostname"], "images": [image]}, True


def parse_entries(submission, bare):
    """Name and parse every image of a submission, before anything is stored.

    Results already parsed once (a rescan that found the same) are known by
    their digest and not parsed again.
    """
    reports = []
    for index, image in enumerate(submission["images"]):
        path = "report" if bare else f"images[{index}]"
        report_path = "report" if bare else f"{path}.{image['report_key']}"
        results = trivy.document_results(image["report"], report_path)
        reports.append((image, path, report_path, ingest.report_digest(results) if results else None))
    known = ingest.known_reports({digest for *_, digest in reports if digest})
    entries, found = [], 0
    for image, path, report_path, digest in reports:
        report = image["report"]
        parsed = known.get(digest)
        if parsed is None:
            parsed = trivy.parse_report(report, report_path)
        else:
            digest = None
        ref = trivy.resolve_image(image["image_name"], image["image_tag"], image["image_id"],
                                  report, path, report_path)
        version = submission["scanner_version"] or trivy.trivy_version(report)
        entries.append((ref, parsed, version, digest))
        found += sum(parsed.counts.values())
    return entries, found


@bp.post("/container-scan")
@agent_auth.login_required(role="agent")
@limiter.limit(_agent_limit, key_func=_agent_limit_key)
def container_scan():
    """Store a host's container image scans; answers the counts."""
    body, bare = envelope_of(read_json_body(), request.args)
    submission = submission_schema.load(body)
    limit = current_app.config["MAX_IMAGES_PER_REQUEST"]
    if len(submission["images"]) > limit:
        raise APIError(400, f"Too many images in one request: {len(submission['images'])} "
                            f"(the limit is {limit}); split the submission.")
    entries, found = parse_entries(submission, bare)
    key = agent_auth.current_user()
    ingest.store_submission(key.organization_id, submission["hostname"], entries,
                            agent_id=submission["agent_id"], scanner=submission["scanner"] or "trivy")
    return {"status": "accepted", "images_processed": len(entries),
            "vulnerabilities_found": found, "hostname": submission["hostname"]}
