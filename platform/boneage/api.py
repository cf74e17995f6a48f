"""API-wide conventions: every error is JSON `{"error": code, "detail": text}`."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import exception_handler


def error_response(status_code: int, code: str, detail: str, **extra) -> Response:
    return Response({"error": code, "detail": detail, **extra}, status=status_code)


def json_error_handler(exc, context):
    if isinstance(exc, (RequestDataTooBig, TooManyFilesSent)):
        return error_response(413, "too_many_files" if isinstance(exc, TooManyFilesSent) else "request_too_large",
                              f"{exc} At most {settings.UPLOAD_MAX_FILES} files and {settings.UPLOAD_MAX_BYTES:,} bytes per request.")
    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500
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


def json_404(request, exception=None):
    """JSON for unknown /api/ URLs (the HTML 404 elsewhere)."""
    return JsonResponse({"error": "not_found", "detail": "No such resource."}, status=status.HTTP_404_NOT_FOUND)


class TokenView(ObtainAuthToken):
    """POST username + password → {"token"} for the API (send it as `Authorization: Token …`)."""

    @extend_schema(summary="Exchange a username and password for an API token")
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)
