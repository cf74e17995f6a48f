"""OpenID Connect login, an option beside the password form (docs/oidc.md).

Off unless `OIDC_ISSUER`, `OIDC_CLIENT_ID` and `OIDC_CLIENT_SECRET` are all set (settings.py refuses to boot with some
and not the others). The authorization code flow with PKCE and a nonce is mozilla-django-oidc's; this module adds what
it leaves out:

- the provider's endpoints come from its discovery document (`{issuer}/.well-known/openid-configuration`), read at the
  first login and kept for an hour, whose `issuer` must be the configured one (OpenID Connect Discovery §4.3);
- the ID token's `iss` must be the issuer and its `aud` the client id, and it must carry `exp` (mozilla-django-oidc
  checks the signature, the expiry and the nonce, not the issuer or the audience);
- a person is matched to an account by an email the provider says it verified (`email_verified`), in an allowed domain
  when `OIDC_ALLOWED_EMAIL_DOMAINS` is set; with no account, a login creates one only under `OIDC_CREATE_USERS`
  (project access still comes from a project admin, as for every account);
- every refusal sends the person back to the login page with the reason, never a 400 or a 500.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponseRedirect
from django.views.generic import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

LOGGER = logging.getLogger(__name__)
DISCOVERY_TTL_S = 3600


class ProviderUnusable(Exception):
    """The provider's discovery document cannot be read or does not describe the configured issuer."""


@dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


_discovered: dict[str, tuple[float, Provider]] = {}
_discovery_lock = threading.Lock()


def enabled() -> bool:
    return bool(getattr(settings, "OIDC_ISSUER", ""))


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME if enabled() else ""


def provider() -> Provider:
    """The configured issuer's endpoints, from its discovery document (cached per process for an hour)."""
    issuer = settings.OIDC_ISSUER
    with _discovery_lock:
        cached = _discovered.get(issuer)
        if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
            return cached[1]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnusable(f"its discovery document {url} cannot be read ({exc.__class__.__name__})") from exc
    if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != issuer:
        raise ProviderUnusable(f"its discovery document names another issuer ({document.get('issuer')!r}, "
                               f"not {issuer!r})" if isinstance(document, dict) else "its discovery document is not "
                               "a JSON object")
    names = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
    missing = [name for name in names if not isinstance(document.get(name), str) or not document[name]]
    if missing:
        raise ProviderUnusable(f"its discovery document lacks {', '.join(missing)}")
    if issuer.startswith("https://") and not all(document[name].startswith("https://") for name in names):
        raise ProviderUnusable("its discovery document names an endpoint that is not https")
    algorithms = document.get("id_token_signing_alg_values_supported")
    if isinstance(algorithms, list) and settings.OIDC_RP_SIGN_ALGO not in algorithms:
        raise ProviderUnusable(f"it does not sign ID tokens with {settings.OIDC_RP_SIGN_ALGO} "
                               f"(it offers {', '.join(map(str, algorithms))}; set OIDC_SIGN_ALGO)")
    found = Provider(issuer, *(document[name] for name in names))
    with _discovery_lock:
        _discovered[issuer] = (time.monotonic(), found)
    return found


def _refused(request, reason: str) -> None:
    LOGGER.warning("OpenID Connect login refused: %s", reason)
    messages.error(request, f"Sign-in with {settings.OIDC_PROVIDER_NAME} was refused: {reason}")


class LoginPage(auth_views.LoginView):
    """Django's login form, plus the OpenID Connect button when it is configured."""

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "oidc_provider": provider_name()}


class OidcLoginStart(OIDCAuthenticationRequestView):
    """`/oidc/authenticate/?next=…`: redirects to the provider's authorization endpoint (code flow, PKCE, nonce)."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the endpoints are read per request, after discovery

    def get(self, request):
        if not enabled():
            raise Http404("OpenID Connect login is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider().authorization_endpoint
        except ProviderUnusable as exc:
            _refused(request, f"{settings.OIDC_PROVIDER_NAME} cannot be used: {exc}")
            return HttpResponseRedirect(settings.LOGIN_URL)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class OidcCallback(OIDCAuthenticationCallbackView):
    """`/oidc/callback/`: the provider sends the browser back here with a code; on success the session is logged in,
    on any refusal the person is back on the login page with the reason."""

    def get(self, request):
        if not enabled():
            raise Http404("OpenID Connect login is not configured")
        if request.GET.get("error"):
            _refused(request, f"the provider answered {request.GET['error']!r}"
                              + (f" ({request.GET['error_description']})" if request.GET.get("error_description") else ""))
        elif "state" in request.GET and request.GET["state"] not in request.session.get("oidc_states", {}):
            _refused(request, "the sign-in did not start here, or it was already used (unknown state)")
            return self.login_failure()
        return super().get(request)


class OidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with the endpoints from discovery and the checks the module docstring lists.
    Django builds a backend for every session request (`get_user`), so nothing is read from the provider before a
    login's callback asks for it."""

    def __init__(self, *args, **kwargs):
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        if not enabled() or request is None or "nonce" not in kwargs:  # a password login, or OIDC not configured
            return None
        try:
            found = provider()
        except ProviderUnusable as exc:
            _refused(request, f"{settings.OIDC_PROVIDER_NAME} cannot be used: {exc}")
            return None
        self.OIDC_OP_TOKEN_ENDPOINT, self.OIDC_OP_USER_ENDPOINT = found.token_endpoint, found.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = found.jwks_uri
        self.OIDC_RP_CLIENT_ID, self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO, self.OIDC_RP_IDP_SIGN_KEY = settings.OIDC_RP_SIGN_ALGO, None
        self.refusal = ""
        try:
            user = super().authenticate(request, **kwargs)
        except SuspiciousOperation as exc:
            _refused(request, f"its answer did not verify ({exc})")
            return None
        except jwt.PyJWTError as exc:
            _refused(request, f"its ID token did not verify ({exc})")
            return None
        except requests.RequestException as exc:
            _refused(request, f"{settings.OIDC_PROVIDER_NAME} did not answer as expected ({exc.__class__.__name__})")
            return None
        if user is None:
            _refused(request, self.refusal or "no account here matches the person it signed in")
        return user

    def _verify_jws(self, payload, key):
        """The signature (by the provider's key, with the configured algorithm only), the issuer, the audience and
        the expiry."""
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"the ID token is signed with {header.get('alg')!r}, not {self.OIDC_RP_SIGN_ALGO}")
        return jwt.decode(payload, key, algorithms=[self.OIDC_RP_SIGN_ALGO], audience=self.OIDC_RP_CLIENT_ID,
                          issuer=settings.OIDC_ISSUER, options={"require": ["exp", "iat", "iss", "aud", "sub"]})

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            self.refusal = "it did not give an email address (the scope must include email)"
            return False
        if claims.get("email_verified") not in (True, "true"):
            self.refusal = f"it does not say that {email} was verified"
            return False
        domains = settings.OIDC_ALLOWED_EMAIL_DOMAINS
        if domains and email.rsplit("@", 1)[1].lower() not in domains:
            self.refusal = f"{email} is not in a domain allowed here ({', '.join(domains)})"
            return False
        return True

    def get_or_create_user(self, access_token, id_token, payload):
        try:
            user = super().get_or_create_user(access_token, id_token, payload)
        except SuspiciousOperation as exc:
            self.refusal = self.refusal or str(exc)
            raise
        if user is None and not self.refusal:
            self.refusal = "there is no account here for that email address; ask a site administrator for one"
        return user

    def filter_users_by_claims(self, claims):
        return self.UserModel.objects.filter(email__iexact=claims["email"], is_active=True)

    def create_user(self, claims):
        """An account named after the email (lowercased), with no usable password and no project."""
        email = claims["email"].strip().lower()
        if self.UserModel.objects.filter(username=email).exists():
            self.refusal = f"an account named {email} exists with another email address"
            return None
        user = self.UserModel.objects.create_user(email, email=email)
        user.first_name = str(claims.get("given_name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.save(update_fields=["first_name", "last_name"])
        LOGGER.info("OpenID Connect login created the account %s", email)
        return user
