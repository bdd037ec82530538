"""OpenAPI: what drf-spectacular infers, plus what every endpoint shares (errors, bearer tokens).

Hooks rather than per-view decorators, so an endpoint added later is described the same way.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from gpuadmin.api.limits import MAX_URL_LENGTH
from gpuadmin.api.permissions import PUBLIC

# The characters gpuadmin.api.inputs refuses in any text input, as a JSON Schema pattern (ECMA syntax).
# `+`, not `*`: an empty string is refused unless the field allows blank, which drf-spectacular then
# says with a oneOf branch of its own (a pattern matching "" too would make "" match both branches).
NO_CONTROL_CHARACTERS = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]+$"

ERROR_CODES = {
    "400": "The request is invalid; `field` names the culprit when there is one.",
    "401": "No token, or an invalid or expired one, where a token is needed.",
    "403": "The token lacks the scope this endpoint needs, or no capacity is left for the plan.",
    "404": "Not found, or not yours.",
    # Any endpoint: the middleware answers these before a view runs (gpuadmin.api.middleware).
    "413": "The request body is larger than the API accepts.",
    "414": f"The URL (path and query string) is longer than {MAX_URL_LENGTH} characters.",
    "429": "Too many requests: wait `Retry-After` seconds.",
}
ERRORS_SCHEMA = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["reason"],
                "properties": {"reason": {"type": "string"}, "field": {"type": "string"}},
            },
        }
    },
}
RATE_HEADERS = {
    name: {"schema": {"type": "string", "pattern": r"^[0-9]+$"}, "description": description}
    for name, description in [
        ("X-RateLimit-Limit", "Requests allowed in the current window."),
        ("X-RateLimit-Remaining", "Requests left in the current window."),
        ("X-RateLimit-Reset", "When the window starts over, in seconds since the epoch."),
    ]
}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "gpuadmin.api.authentication.BearerTokenAuthentication"
    name = "personalAccessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal access token: `python manage.py create_api_token USERNAME`.",
        }


class LinodeAutoSchema(AutoSchema):
    """What drf-spectacular infers, told more exactly: public endpoints need no token (one may be sent,
    and is then checked), and request strings say what the services accept (Text's `schema`)."""

    def get_auth(self):
        auth = super().get_auth()
        if getattr(self.view, "scope", PUBLIC) is PUBLIC:
            return [*auth, {}]  # {}: no credentials at all is as good
        return auth

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        result = super()._map_serializer_field(field, direction, bypass_extensions)
        extra = getattr(field, "schema_extra", None)
        if direction == "request" and extra is not None and result.get("type") == "string":
            result.update(extra)
            result.setdefault("pattern", NO_CONTROL_CHARACTERS)
        return result


def only_v4(endpoints, **kwargs):
    """/v4beta serves the same views: describe them once."""
    return [
        (path, path_regex, method, callback)
        for path, path_regex, method, callback in endpoints
        if path.startswith("/v4/") and not path.endswith("openapi.json")
    ]


def shared_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Errors"] = ERRORS_SCHEMA
    error_ref = {"$ref": "#/components/schemas/Errors"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code, description in ERROR_CODES.items():
                responses.setdefault(
                    code, {"description": description, "content": {"application/json": {"schema": error_ref}}}
                )
            for response in responses.values():
                response.setdefault("headers", {}).update(RATE_HEADERS)
            if path.startswith("/v4/linode/instances") and method == "post":
                responses.setdefault(
                    "503",
                    {
                        "description": "Provisioning is paused by the operators' kill switch.",
                        "content": {"application/json": {"schema": error_ref}},
                    },
                )
    return result
