"""How API and DICOMweb requests authenticate (settings.REST_FRAMEWORK): the API token under either scheme, then the
browser's session. A module of its own: DRF imports it while it builds APIView, so it must not import views."""
from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header


class BearerOrTokenAuthentication(TokenAuthentication):
    """The API token as `Authorization: Bearer …` (what viewers such as OHIF send, its `?token=` included) or
    `Authorization: Token …` (DRF's scheme). Listed first, so an unauthenticated request is a 401 whose
    `WWW-Authenticate` names the Bearer scheme (DRF answers 403 when the first scheme has no challenge, as
    session authentication has none). A token in the query string is never read: URLs end up in logs."""

    KEYWORDS = ("bearer", "token")

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].decode("latin-1").lower() not in self.KEYWORDS:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header must be 'Bearer <token>' (or 'Token <token>').")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The token must be printable ASCII.")
        return self.authenticate_credentials(key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="boneage"'
