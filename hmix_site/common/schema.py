"""The OpenAPI schema's view of errors: every operation lists the error statuses it can answer,
each with the API's one error body (hmix_site/common/api.py), so that clients and the
schemathesis run in tests/test_api_fuzz.py can rely on the schema.

Which statuses an operation documents follows from the view itself (ERROR_RULES below): a new
view gets the right ones without a decorator, and a view that can answer another status names it
in `extra_error_statuses`.
"""

from collections.abc import Callable
from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Error"

    message = serializers.CharField(help_text="What was wrong, in words for a person.")
    extra = serializers.DictField(
        help_text='Details; for invalid input, "fields" maps each field to its problems.'
    )


def _requires_login(schema: "HmixAutoSchema") -> bool:
    return not all(isinstance(p, AllowAny) for p in schema.view.get_permissions())


def _has_path_parameters(schema: "HmixAutoSchema") -> bool:
    return "{" in schema.path


def _writes(schema: "HmixAutoSchema") -> bool:
    return schema.method in ("POST", "PUT", "PATCH", "DELETE")


def _takes_body(schema: "HmixAutoSchema") -> bool:
    return schema.method in ("POST", "PUT", "PATCH") and bool(schema.get_request_serializer())


def _throttled(schema: "HmixAutoSchema") -> bool:
    return bool(schema.view.get_throttles())


def _always(schema: "HmixAutoSchema") -> bool:
    return True


# status: (when the operation can answer it, what it means)
ERROR_RULES: dict[int, tuple[Callable[["HmixAutoSchema"], bool], str]] = {
    # Query strings, headers and forms are checked on every route (a NUL answers 400 anywhere).
    400: (_always, "Bad input; the message names the problem and nothing was written."),
    401: (_requires_login, "No credentials, or a token that is not valid."),
    403: (_requires_login, "Not allowed: not a researcher (or the owner) of this study."),
    404: (_has_path_parameters, "No such study, session, job or page."),
    409: (_writes, "Refused in the current state of the study or session."),
    413: (_takes_body, "The request body is larger than this endpoint accepts."),
    415: (_takes_body, "The body's media type is not one this endpoint reads."),
    429: (_throttled, "Too many requests; retry after the Retry-After header's seconds."),
}


class HmixAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        statuses = {code for code, (applies, _) in ERROR_RULES.items() if applies(self)}
        statuses |= set(getattr(self.view, "extra_error_statuses", ()))
        for code in sorted(statuses):
            if str(code) in responses:
                continue
            body = self._get_response_for_code(ErrorSerializer, str(code), direction=direction)
            default = ERROR_RULES.get(code, (_always, "Refused."))[1]
            body["description"] = default
            responses[str(code)] = body
        return responses
