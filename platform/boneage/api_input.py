"""What the API accepts: JSON object bodies and text without NUL (parsers), bounded pages (pagination); and how it
answers a client's Accept (negotiation) and a browser (the browsable API's renderer).

Apart from boneage.api because DRF imports these classes from its settings while its views module is loading.
"""
from __future__ import annotations

from rest_framework import exceptions, parsers, permissions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer


def _check_no_nul(value, where: str = "body") -> None:
    if isinstance(value, str):
        if "\0" in value:
            raise exceptions.ParseError(f"The {where} holds a NUL character.", code="nul_character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_nul(key, where)
            _check_no_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_no_nul(item, where)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            raise exceptions.ParseError(f"The body must be a JSON object, not {type(data).__name__}.",
                                        code="not_an_object")
        _check_no_nul(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _check_no_nul(dict(data.lists()))
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        _check_no_nul(dict(result.data.lists()))
        _check_no_nul([upload.name or "" for _, uploads in result.files.lists() for upload in uploads], "file name")
        return result


class BoundedPagination(LimitOffsetPagination):
    """limit is capped at MAX_PAGE_SIZE (a limit beyond the database's integers was a 500)."""

    max_limit = 500

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for param in params:
            if param["name"] == self.limit_query_param:
                param["schema"].update(minimum=1, maximum=self.max_limit)
                param["description"] = f"Rows per page (default {self.default_limit}, larger values are capped at {self.max_limit})."
            elif param["name"] == self.offset_query_param:
                param["schema"]["minimum"] = 0
        return params


class SchemaReaders(permissions.BasePermission):
    """/api/schema/ and /api/docs/ map every operation: signed-in users only, unless API_DOCS_PUBLIC opens them."""

    def has_permission(self, request, view) -> bool:
        from django.conf import settings

        return bool(settings.API_DOCS_PUBLIC or (request.user and request.user.is_authenticated))


class JsonWhenNothingElseFits(DefaultContentNegotiation):
    """An Accept that no renderer fits gets JSON instead of a 406, as HTTP allows (RFC 9110 §12.5.1).

    DRF chooses the renderer before the view runs and answers 406 when none fits. The image views answer their PNG
    themselves and render only their errors, so a client accepting only image/png lost every answer, the errors'
    statuses and reasons included, to a 406: now it gets the PNG, or the real error as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


class BrowsableApi(BrowsableAPIRenderer):
    """DRF's browsable API for a person who opens an /api/ URL in a browser, as the README invites.

    The list views paginate a query they build per request (no `queryset` attribute) and no view has filter
    backends, so there is no filter form to draw: DRF's renderer asks for `get_queryset()` anyway and failed
    with a 500. An error stays the JSON `{"error", "detail"}` of every other client, detail included."""

    def get_filter_form(self, data, view, request):
        if not getattr(view, "filter_backends", None):
            return None
        return super().get_filter_form(data, view, request)

    def render(self, data, accepted_media_type=None, renderer_context=None):
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400:
            response["Content-Type"] = "application/json"
            return JSONRenderer().render(data, "application/json", renderer_context)
        return super().render(data, accepted_media_type, renderer_context)
