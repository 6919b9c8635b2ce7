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
    "413": "Request body too large",
    "429": "Rate limit exceeded",
}


def _responses(ok_status, ok_schema, ok_description, codes):
    responses = {ok_status: {"description": ok_description}}
    if ok_schema is not None:
        responses[ok_status]["content"] = {"application/json": {"schema": ok_schema}}
    for code in codes:
        responses[code] = {"description": _ERRORS[code],
                           "content": {"application/json": {"schema": "Error"}}}
    return responses


def build_spec():
    spec = APISpec(title="Container vulnerability inventory", version="1.0.0",
                   openapi_version="3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
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
        "security": [{"ApiKey": []}],
        "parameters": [{"name": "hostname", "in": "query", "required": False,
                        "schema": {"type": "string"},
                        "description": "The host, when the body is one bare Trivy report"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": "Submission"}}},
        "responses": _responses("200", "SubmissionResult", "Accepted",
                                ["400", "401", "403", "413", "429"]),
    }})
    spec.path(path="/api/containers", operations={"get": {
        "summary": "List container images",
        "security": [{"Bearer": []}],
        "parameters": [{"in": "query", "schema": schemas.ListQuerySchema}],
        "responses": _responses("200", "ContainerPage", "A page of images",
                                ["400", "401", "403", "429"]),
    }})
    spec.path(path="/api/containers/{image_id}", operations={"get": {
        "summary": "Get a container image with its vulnerabilities",
        "security": [{"Bearer": []}],
        "parameters": [{"name": "image_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0}}],
        "responses": _responses("200", "ContainerDetail", "The image", ["401", "404", "429"]),
    }})
    spec.path(path="/api/auth/token", operations={
        "post": {"summary": "Exchange HTTP Basic credentials for a bearer token",
                 "security": [{"Basic": []}],
                 "responses": _responses("200", "Token", "A new token", ["401", "429"])},
        "delete": {"summary": "Revoke the bearer token sent",
                   "security": [{"Bearer": []}],
                   "responses": _responses("204", None, "Revoked", ["401"])},
    })
    for path, summary in (("/healthz", "The process is alive"), ("/readyz", "The database answers")):
        spec.path(path=path, operations={"get": {"summary": summary, "responses": {
            "200": {"description": "OK"},
            **({"503": {"description": "Not ready",
                        "content": {"application/json": {"schema": "Error"}}}}
               if path == "/readyz" else {})}}})
    return spec.to_dict()


@bp.get("/api/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API."""
    if "openapi_spec" not in current_app.extensions:
        current_app.extensions["openapi_spec"] = build_spec()
    return current_app.extensions["openapi_spec"]
