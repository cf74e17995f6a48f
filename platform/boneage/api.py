"""API-wide conventions: every error is JSON `{"error": code, "detail": text}`.

Also for what happens outside DRF (URL resolution, an uncaught exception, under every profile):
`JsonApiErrorsMiddleware` and the handler404/handler500 in urls.py. Bodies are JSON objects and no
text holds a NUL character (PostgreSQL refuses it): the parsers of boneage.api_input refuse both with a 400.
"""
from __future__ import annotations

import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, TooManyFilesSent
from django.db import DataError
from django.http import Http404, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import exception_handler

from boneage.core.errors import AppError

logger = logging.getLogger("django.request")


def error_response(status_code: int, code: str, detail: str, **extra) -> Response:
    return Response({"error": code, "detail": detail, **extra}, status=status_code)


def json_error_handler(exc, context):
    if isinstance(exc, AppError):  # the platform's one error type: actions raise it, views let it pass
        response = error_response(exc.status, exc.code, exc.detail, **exc.extra)
        if "retry_after" in exc.extra:  # a busy server says when to ask again (core.isolation: decoder_busy)
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response
    if isinstance(exc, (RequestDataTooBig, TooManyFilesSent)):
        return error_response(413, "too_many_files" if isinstance(exc, TooManyFilesSent) else "request_too_large",
                              f"{exc} At most {settings.UPLOAD_MAX_FILES} files and {settings.UPLOAD_MAX_BYTES:,} bytes per request.")
    if isinstance(exc, FileNotFoundError):  # a row whose stored file was lost from storage: say so, never a 500
        logger.warning("A stored file is gone from storage: %s", exc.filename)
        return error_response(410, "stored_file_missing", "A stored file this answer needs is gone from storage; "
                                                          "a project admin can delete the study and store it again.")
    if isinstance(exc, DataError):  # a value the database cannot hold (out of range): the input's fault
        return error_response(400, "invalid_value", "A value is out of the range this field can hold.")
    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: JsonApiErrorsMiddleware logs it and answers a JSON 500
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": "invalid", "detail": _flatten(exc.detail), "fields": exc.detail}
        return response
    detail = getattr(exc, "detail", str(exc))
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.APIException) and hasattr(exc, "get_codes"):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else code
    response.data = {"error": code, "detail": str(detail)}
    return response


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


NOT_FOUND_DETAIL = "No such resource."


def json_404(request, exception=None):
    """JSON for unknown /api/ URLs (the HTML 404 elsewhere)."""
    return JsonResponse({"error": "not_found", "detail": NOT_FOUND_DETAIL}, status=status.HTTP_404_NOT_FOUND)


def handler404(request, exception=None):
    if _is_api(request):
        return json_404(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return _server_error()
    from django.views.defaults import server_error

    return server_error(request)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _server_error() -> JsonResponse:
    return JsonResponse({"error": "server_error", "detail": "Something went wrong on our side; it has been logged."},
                        status=500)


_CODES = {400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
          405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type", 500: "server_error"}


class JsonApiErrorsMiddleware:
    """Under /api/: refuse NUL characters in the query, answer every error as JSON (also Django's own HTML
    404/403/400 pages and DEBUG's technical pages), and turn an uncaught exception into a logged JSON 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not _is_api(request):
            return self.get_response(request)
        if any("\0" in key or any("\0" in value for value in values) for key, values in request.GET.lists()):
            return JsonResponse({"error": "nul_character", "detail": "The query holds a NUL character."}, status=400)
        response = self.get_response(request)
        if response.status_code >= 400 and "json" not in response.get("Content-Type", ""):
            code = response.status_code
            detail = NOT_FOUND_DETAIL if code == 404 else HTTPStatus(code).phrase + "."
            return JsonResponse({"error": _CODES.get(code, "error"), "detail": detail}, status=code)
        return response

    def process_exception(self, request, exception):
        if not _is_api(request):
            return None
        if isinstance(exception, Http404):
            return json_404(request, exception)
        if isinstance(exception, PermissionDenied):
            return JsonResponse({"error": "permission_denied", "detail": "You may not do this."}, status=403)
        if isinstance(exception, SuspiciousOperation):
            return JsonResponse({"error": "bad_request", "detail": str(exception)[:300]}, status=400)
        logger.error("Internal Server Error: %s", request.path, exc_info=exception,
                     extra={"status_code": 500, "request": request})
        return _server_error()


class TokenView(ObtainAuthToken):
    """POST username + password → {"token"} for the API (send it as `Authorization: Bearer …` or `Token …`)."""

    @extend_schema(summary="Exchange a username and password for an API token")
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


# --- the schema says which errors each operation answers ------------------------------------------

ERROR_SCHEMA = {"type": "object", "required": ["error", "detail"], "additionalProperties": True,
                "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}}
ERRORS_OF_EVERY_OPERATION = {
    "400": "Invalid input (bad parameter, body not a JSON object, a NUL character)",
    "401": "Not authenticated", "403": "Your role in the project cannot do this",
    "404": "No such object, or not in a project of yours (the same answer for both)",
}
ERRORS_OF_WRITES = {"409": "Conflicts with the current state (stale revision, already claimed …)",
                    "413": "Request too large", "415": "Unsupported media type",
                    "422": "Well-formed but unusable (e.g. a file that cannot be decoded)"}
ERRORS_OF_IMAGES = {"422": "The stored original cannot be decoded (recorded on the study)"}


def document_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the JSON errors it can answer."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            errors = dict(ERRORS_OF_EVERY_OPERATION)
            if method != "get":
                errors.update(ERRORS_OF_WRITES)
            if path.endswith(("/image/", "/thumbnail/")):
                errors.update(ERRORS_OF_IMAGES)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(code, {"description": description, "content": {"application/json": {"schema": ref}}})
    return result
