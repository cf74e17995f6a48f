"""OpenID Connect login (boneage.oidc), an option: through the real redirect flow between Daphne serving the platform
and a small provider on loopback (tests/oidc_issuer.py: discovery, authorization, token with PKCE, userinfo, JWKS),
followed by an HTTP client that keeps cookies as a browser does. A person the provider vouches for logs in to their
own account; a stranger, a forged or misaddressed ID token and an unverified email are sent back to the login page
with the reason and no session. Off unless configured; half-configured, the server does not boot."""
from __future__ import annotations

import re

import pytest
import requests
from django.contrib.auth import get_user_model

from tests.boneage.test_settings import run_manage
from tests.oidc_issuer import FakeIssuer, serve

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def issuer():
    fake = FakeIssuer()
    server = serve(fake)
    yield fake
    server.shutdown()


@pytest.fixture
def oidc_options():
    """Settings a test adds before the server starts (the create-accounts option)."""
    return {}


@pytest.fixture
def server(issuer, settings, oidc_options, request):
    """Daphne serving the platform with OpenID Connect login pointed at the fake issuer (the settings are made before
    the server's process starts, so it has them)."""
    settings.OIDC_ISSUER = issuer.url
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = issuer.client_id, issuer.client_secret
    settings.OIDC_PROVIDER_NAME = "Hospital SSO"
    for name, value in oidc_options.items():
        setattr(settings, name, value)
    server = request.getfixturevalue("live_asgi_server")
    issuer.redirect_uris.append(f"{server}/oidc/callback/")
    return server


def sign_in(server: str, next_path: str = "/projects/") -> tuple[requests.Session, requests.Response]:
    """Click "Sign in with …" on the login page and follow every redirect, as a browser does."""
    browser = requests.Session()
    page = browser.get(f"{server}/accounts/login/?next={next_path}", timeout=30)
    link = re.search(r'id="oidc-login" href="([^"]+)"', page.text)
    assert link, "the login page offers no OpenID Connect button"
    return browser, browser.get(server + link.group(1).replace("&amp;", "&"), timeout=60)


def logged_in(browser: requests.Session, server: str) -> bool:
    return browser.get(f"{server}/api/projects/", timeout=30).status_code == 200


def person(email: str, verified: bool = True, **claims) -> dict:
    return {"sub": f"sub-{email}", "email": email, "email_verified": verified, **claims}


def test_a_person_the_provider_signs_in_reaches_their_own_projects_through_the_redirect_flow(server, issuer, owner, project):
    owner.email = "Olivia@Hospital.example"
    owner.save()
    issuer.person = person("olivia@hospital.example")
    browser, landed = sign_in(server, f"/projects/{project.pk}/")
    hops = [response.headers["Location"] for response in landed.history]
    assert hops[0].startswith(f"{issuer.url}/authorize?") and "code_challenge=" in hops[0] and "nonce=" in hops[0]
    assert hops[1].startswith(f"{server}/oidc/callback/?code=")
    assert landed.status_code == 200 and landed.url == f"{server}/projects/{project.pk}/"
    assert issuer.requests.count("POST /token") == 1 and "GET /jwks" in issuer.requests and "GET /userinfo" in issuer.requests
    projects = browser.get(f"{server}/api/projects/", timeout=30).json()
    assert [item["id"] for item in projects["results"]] == [project.pk]
    assert browser.get(f"{server}/api/projects/", timeout=30).status_code == 200
    assert get_user_model().objects.count() == 2  # the owner and the member: nobody was created


def test_a_stranger_the_provider_vouches_for_gets_no_account_and_no_session(server, issuer, owner, project):
    issuer.person = person("stranger@elsewhere.example")
    browser, landed = sign_in(server)
    assert landed.url.startswith(f"{server}/accounts/login/")
    assert "Sign-in with Hospital SSO was refused" in landed.text and "no account here" in landed.text
    assert not logged_in(browser, server)
    assert not get_user_model().objects.filter(email__iexact="stranger@elsewhere.example").exists()


@pytest.mark.parametrize("misbehaviour,reason", [
    ({"sign_with_other_key": True}, "its ID token did not verify (Signature verification failed)"),
    ({"token_audience": "another-client"}, "its ID token did not verify (Audience doesn&#x27;t match)"),
    ({"token_issuer": "https://evil.example"}, "its ID token did not verify (Invalid issuer)"),
])
def test_an_id_token_that_is_forged_or_addressed_elsewhere_is_refused(server, issuer, owner, misbehaviour, reason):
    owner.email = "olivia@hospital.example"
    owner.save()
    issuer.person = person("olivia@hospital.example")
    for name, value in misbehaviour.items():
        setattr(issuer, name, value)
    browser, landed = sign_in(server)
    assert landed.url.startswith(f"{server}/accounts/login/")
    assert reason in landed.text
    assert not logged_in(browser, server)


def test_an_email_the_provider_did_not_verify_does_not_open_the_account_that_has_it(server, issuer, owner):
    owner.email = "olivia@hospital.example"
    owner.save()
    issuer.person = person("olivia@hospital.example", verified=False)
    browser, landed = sign_in(server)
    assert "does not say that olivia@hospital.example was verified" in landed.text
    assert not logged_in(browser, server)


def test_a_person_who_declines_at_the_provider_is_back_on_the_login_page_with_why(server, issuer):
    issuer.person = None
    browser, landed = sign_in(server)
    assert landed.url.startswith(f"{server}/accounts/login/") and "access_denied" in landed.text
    assert not logged_in(browser, server)


@pytest.mark.parametrize("oidc_options", [{"OIDC_CREATE_USER": True, "OIDC_ALLOWED_EMAIL_DOMAINS": ["hospital.example"]}])
def test_with_account_creation_on_a_colleague_gets_an_account_but_no_project_and_other_domains_are_refused(
        server, issuer, project, oidc_options):
    issuer.person = person("carol@hospital.example", given_name="Carol", family_name="Ng")
    carol, landed = sign_in(server)
    assert landed.url == f"{server}/projects/" and logged_in(carol, server)
    account = get_user_model().objects.get(email="carol@hospital.example")
    assert (account.username, account.first_name, account.has_usable_password()) == ("carol@hospital.example", "Carol", False)
    assert carol.get(f"{server}/api/projects/{project.pk}/", timeout=30).status_code == 404  # an outsider to it

    issuer.person = person("mallory@elsewhere.example")
    mallory, landed = sign_in(server)
    assert "not in a domain allowed here (hospital.example)" in landed.text and not logged_in(mallory, server)
    assert not get_user_model().objects.filter(email="mallory@elsewhere.example").exists()


def test_without_configuration_there_is_no_button_and_the_oidc_urls_are_404(client, settings):
    settings.OIDC_ISSUER = ""
    assert 'id="oidc-login"' not in client.get("/accounts/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


@pytest.mark.parametrize("variables,message", [
    ({"OIDC_ISSUER": "https://sso.example.org"}, "OIDC_CLIENT_ID, OIDC_CLIENT_SECRET missing"),
    ({"OIDC_CLIENT_ID": "boneage", "OIDC_CLIENT_SECRET": "s3cret"}, "OIDC_ISSUER missing"),
    ({"OIDC_PROVIDER_NAME": "Hospital SSO"}, "OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET missing"),
    ({"OIDC_ISSUER": "sso.example.org", "OIDC_CLIENT_ID": "b", "OIDC_CLIENT_SECRET": "s"}, "must be an http:// or https://"),
    ({"OIDC_ISSUER": "https://sso.example.org", "OIDC_CLIENT_ID": "b", "OIDC_CLIENT_SECRET": "s",
      "OIDC_SIGN_ALGO": "none"}, "OIDC_SIGN_ALGO='none' must be one of"),
    ({"OIDC_ISSUER": "https://sso.example.org", "OIDC_CLIENT_ID": "b", "OIDC_CLIENT_SECRET": "s",
      "OIDC_CREATE_USERS": "maybe"}, "OIDC_CREATE_USERS='maybe' is not a boolean"),
])
def test_a_half_configured_openid_connect_login_stops_the_boot(variables, message, tmp_path):
    result = run_manage("check", BONEAGE_VAR_DIR=str(tmp_path), **variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_a_complete_configuration_boots(tmp_path):
    result = run_manage("check", BONEAGE_VAR_DIR=str(tmp_path), OIDC_ISSUER="https://sso.example.org",
                        OIDC_CLIENT_ID="boneage", OIDC_CLIENT_SECRET="s3cret")
    assert result.returncode == 0, result.stderr
