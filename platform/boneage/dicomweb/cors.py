"""CORS for /dicomweb/ only, for the origins in DICOMWEB_CORS_ORIGINS (empty: off). A browser viewer such
as OHIF on another origin sends `Authorization: Token …`; cookies are never allowed cross-origin."""
from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

ALLOWED_HEADERS = "Authorization, Accept, Content-Type"


class DicomWebCorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        origin = request.headers.get("Origin", "")
        allowed = request.path.startswith("/dicomweb/") and origin in settings.DICOMWEB_CORS_ORIGINS
        if allowed and request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            response["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response["Access-Control-Max-Age"] = "600"
        else:
            response = self.get_response(request)
        if allowed:
            response["Access-Control-Allow-Origin"] = origin
            response["Vary"] = "Origin"
        return response
