"""A small OpenID Connect provider on loopback for the login tests: discovery, authorization (it signs in whoever the
test says is at the keyboard), token (authorization code + PKCE S256, client secret), userinfo and JWKS, with RS256 ID
tokens. It checks what a real provider checks of the client (client id and secret, the registered redirect URI, the
code verifier, single use of a code); a test can make it misbehave (sign with another key, name another issuer or
audience) to show the platform refuses."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def _new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeIssuer:
    client_id: str = "boneage-test"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: list[str] = field(default_factory=list)
    person: dict | None = None  # the claims of whoever is signed in at the provider (sub, email, email_verified, …)
    sign_with_other_key: bool = False
    token_issuer: str | None = None  # the iss the ID token names (None: the issuer's own URL)
    token_audience: str | None = None
    url: str = ""
    requests: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.key, self.other_key, self.kid = _new_key(), _new_key(), "key-1"
        self._codes: dict[str, dict] = {}
        self._tokens: dict[str, dict] = {}
        self._lock = threading.Lock()

    # --- endpoints ---------------------------------------------------------------------------------------------
    def discovery(self) -> dict:
        return {"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token", "userinfo_endpoint": f"{self.url}/userinfo",
                "jwks_uri": f"{self.url}/jwks", "response_types_supported": ["code"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"]}

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            return 400, {}, b"unknown client or unregistered redirect_uri"
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return 400, {}, b"only the code flow with the openid scope"
        if self.person is None:
            target = f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': query.get('state', '')})}"
            return 302, {"Location": target}, b""
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = {"person": dict(self.person), "nonce": query.get("nonce"), "redirect_uri": redirect_uri,
                                 "challenge": query.get("code_challenge"), "method": query.get("code_challenge_method")}
        return 302, {"Location": f"{redirect_uri}?{urlencode({'code': code, 'state': query['state']})}"}, b""

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code" or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if grant["method"] != "S256" or digest != grant["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time())
        person = grant["person"]
        claims = {"iss": self.token_issuer or self.url, "sub": person["sub"], "aud": self.token_audience or self.client_id,
                  "iat": now, "exp": now + 300, "nonce": grant["nonce"], "email": person.get("email")}
        key = self.other_key if self.sign_with_other_key else self.key
        id_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[access_token] = person
        return 200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}

    def userinfo(self, authorization: str) -> tuple[int, dict]:
        with self._lock:
            person = self._tokens.get(authorization.removeprefix("Bearer "))
        return (200, person) if person else (401, {"error": "invalid_token"})


def serve(issuer: FakeIssuer) -> ThreadingHTTPServer:
    """Serve `issuer` on a free loopback port (sets issuer.url); shut the returned server down when done."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status: int, body: dict | bytes, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if isinstance(body, dict) else body
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            parts = urlsplit(self.path)
            issuer.requests.append(f"GET {parts.path}")
            if parts.path == "/.well-known/openid-configuration":
                return self.reply(200, issuer.discovery())
            if parts.path == "/jwks":
                return self.reply(200, issuer.jwks())
            if parts.path == "/authorize":
                status, headers, body = issuer.authorize({k: v[0] for k, v in parse_qs(parts.query).items()})
                return self.reply(status, body, headers)
            if parts.path == "/userinfo":
                return self.reply(*issuer.userinfo(self.headers.get("Authorization", "")))
            return self.reply(404, {"error": "not_found"})

        def do_POST(self):
            issuer.requests.append(f"POST {self.path}")
            if self.path != "/token":
                return self.reply(404, {"error": "not_found"})
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            return self.reply(*issuer.token(form, self.headers.get("Authorization", "")))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
