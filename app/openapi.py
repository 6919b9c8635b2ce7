"""``GET /api/openapi.json``: the API described from the marshmallow schemas."""
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app

from . import schemas

bp = Blueprint("openapi", __name__)

_ERRORS = {
    "400": "Invalid request body, query or malformed Trivy JSON",
    "401": "Invalid or missing API key / token",
    "403": "Not permitted",
    "404": "Not found",
    "413": "Request body too large, as sent or decompressed",
    "415": "Unsupported Content-Encoding",
    "429": "Rate limit exceeded",
    "503": "The database is unavailable",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "schema": {"type": "string"}, "required": True}}
_STATUS = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
# A bare Trivy report (schema 2 object, legacy list of results, or null), sent with ?hostname=.
_TRIVY_REPORT = dict(schemas.TRIVY_REPORT,
                     description="A bare Trivy report, as 'trivy image -f json' writes it; needs ?hostname=.")


_NO_CONTROL = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
_SEVERITY_WORD = "(" + "|".join("".join(f"[{c}{c.upper()}]" for c in name) for name in schemas.SEVERITY_NAMES) + ")"
_SEVERITIES = f"^\\s*{_SEVERITY_WORD}\\s*(,\\s*{_SEVERITY_WORD}\\s*)*$"


def _responses(ok_status, ok_schema, ok_description, codes):
    responses = {ok_status: {"description": ok_description}}
    if ok_schema is not None:
        responses[ok_status]["content"] = {"application/json": {"schema": ok_schema}}
    for code in codes:
        responses[code] = {"description": _ERRORS[code],
                           "content": {"application/json": {"schema": "Error"}}}
        if code in ("429", "503"):
            responses[code]["headers"] = _RETRY_AFTER
    return responses


def _query(name, description, schema=None):
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def build_spec():
    spec = APISpec(title="Container vulnerability inventory", version="1.0.0",
                   openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    spec.components.security_scheme("AgentKey", {"type": "apiKey", "in": "header", "name": "X-Agent-Key"})
    spec.components.security_scheme("Bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("Basic", {"type": "http", "scheme": "basic"})
    spec.components.schema("Error", schema=schemas.ErrorSchema)
    spec.components.schema("Submission", schema=schemas.SubmissionSchema)
    spec.components.schema("SubmissionResult", schema=schemas.SubmissionResultSchema)
    spec.components.schema("ContainerPage", schema=schemas.ContainerPageSchema)
    spec.components.schema("ContainerDetail", schema=schemas.ContainerDetailSchema)
    spec.components.schema("Token", schema=schemas.TokenSchema)
    spec.path(path="/api/agent/container-scan", operations={"post": {
        "summary": "Submit Trivy scan results for a host's container images",
        "description": "The body is the {hostname, images} envelope, or one bare Trivy report with "
                       "?hostname=. It is read as JSON whatever its Content-Type; Content-Encoding gzip "
                       "is accepted. A request is stored whole or not at all.",
        "security": [{"ApiKey": []}, {"AgentKey": []}],
        "parameters": [
            _query("hostname", "The host, when the body is one bare Trivy report"),
            _query("image_name", "The image reference of a bare report that does not name itself"),
            _query("image_tag", "The image tag of a bare report"),
            _query("image_id", "The image id of a bare report"),
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "anyOf": [{"$ref": "#/components/schemas/Submission"}, _TRIVY_REPORT]}}}},
        "responses": _responses("200", "SubmissionResult", "Accepted",
                                ["400", "401", "403", "413", "415", "429", "503"]),
    }})
    spec.path(path="/api/containers", operations={"get": {
        "summary": "List container images",
        "security": [{"Bearer": []}],
        "parameters": [_query("severity", "One or more of critical, high, medium, low, unknown, "
                                          "comma-separated, any case", {"type": "string", "pattern": _SEVERITIES}),
                       _query("search", "Case-insensitive substring of the image name or tag",
                              {"type": "string", "maxLength": 256, "pattern": _NO_CONTROL}),
                       _query("organization_id", "Narrows an admin's view to one organization",
                              {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
                       _query("page", "Page number", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1,
                                                      "default": 1}),
                       _query("per_page", "Results per page", {"type": "integer", "minimum": 1, "maximum": 100,
                                                               "default": 25})],
        "responses": _responses("200", "ContainerPage", "A page of images",
                                ["400", "401", "403", "429", "503"]),
    }})
    spec.path(path="/api/containers/{image_id}", operations={"get": {
        "summary": "Get a container image with its vulnerabilities",
        "security": [{"Bearer": []}],
        "parameters": [{"name": "image_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0}}],
        "responses": _responses("200", "ContainerDetail", "The image",
                                ["401", "404", "429", "503"]),
    }})
    spec.path(path="/api/auth/token", operations={
        "post": {"summary": "Exchange HTTP Basic credentials for a bearer token",
                 "security": [{"Basic": []}],
                 "responses": _responses("200", "Token", "A new token", ["401", "429", "503"])},
        "delete": {"summary": "Revoke the bearer token sent",
                   "security": [{"Bearer": []}],
                   "responses": _responses("204", None, "Revoked", ["401", "503"])},
    })
    for path, summary, ready in (("/healthz", "The process is alive", "ok"),
                                 ("/readyz", "The database answers", "ready")):
        responses = {"200": {"description": ready,
                             "content": {"application/json": {"schema": _STATUS}}}}
        if path == "/readyz":
            responses.update(_responses("200", _STATUS, ready, ["503"]))
        spec.path(path=path, operations={"get": {"summary": summary, "security": [],
                                                 "responses": responses}})
    spec.path(path="/api/openapi.json", operations={"get": {
        "summary": "This OpenAPI 3 document", "security": [],
        "responses": {"200": {"description": "The document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}})
    return spec.to_dict()


@bp.get("/api/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API."""
    if "openapi_spec" not in current_app.extensions:
        current_app.extensions["openapi_spec"] = build_spec()
    return current_app.extensions["openapi_spec"]
