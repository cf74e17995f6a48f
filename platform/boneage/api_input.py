"""What the API accepts: JSON object bodies and text without NUL (parsers), bounded pages (pagination).

Apart from boneage.api because DRF imports these classes from its settings while its views module is loading.
"""
from __future__ import annotations

from rest_framework import exceptions, parsers, permissions
from rest_framework.pagination import LimitOffsetPagination


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
