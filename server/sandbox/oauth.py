"""Emulated NHS identity service: POST /oauth2/token, plus bearer checks on emulated APIs.

Enforces the NHS rules for signed-JWT client assertions (nhs-apis.md 3.1; messages and
statuses from the identity-service proxy and its e2e tests): grant_type,
client_assertion_type, header alg RS512 / kid / typ JWT, iss = sub = a registered API
key, aud = this token URL, exp not past and at most 5 minutes ahead (310 s tolerance),
jti unique, signature against the registered JWKS. Token exchange checks the shape of
the CIS2 id_token (kid, iss, exp) but not its signature: the emulator has no CIS2 keys.

Control (tests, and the façade's sandbox key registration):
- POST /_control/oauth/clients {"api_key", "jwks"}: register an app's public keys;
- POST /_control/oauth {"expires_in": 2, "require_auth": [{"path_prefix", "kind"}]}:
  token lifetime, and which API paths demand a bearer token ("app", "user" or "any");
- GET /_control/oauth: counters (token requests, tokens issued, bearer checks passed and
  refused); POST /_control/oauth/reset: forget everything.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
EXP_TOLERANCE = 310  # the identity service allows 5 minutes plus 10 s of clock skew
CIS2_REFRESH_LIFETIME = "43199"

AJ = "in client_assertion JWT"


class TokenRequestError(Exception):
    """One NHS token endpoint refusal: status, OAuth error code and NHS's description."""

    def __init__(self, description: str, status: int = 400, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.error = error

    def response(self) -> Response:
        return JSONResponse(
            {
                "error": self.error,
                "error_description": self.description,
                "message_id": f"rrt-{secrets.randbelow(10**18)}-emulator",
            },
            status_code=self.status,
        )


@dataclass
class Issued:
    kind: str  # "app" or "user"
    expires_at: float


@dataclass
class AuthRequirement:
    path_prefix: str
    kind: str = "any"


@dataclass
class OAuthState:
    """Registered apps, issued tokens, seen jtis, and what the emulated APIs demand."""

    clients: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # api key -> kid -> JWK
    expires_in: int = 599
    require_auth: list[AuthRequirement] = field(default_factory=list)
    issued: dict[str, Issued] = field(default_factory=dict)
    seen_jti: set[str] = field(default_factory=set)
    token_requests: int = 0
    tokens_issued: int = 0
    bearer_accepted: int = 0
    bearer_refused: int = 0

    def reset(self) -> None:
        fresh = OAuthState()
        self.__dict__.update(fresh.__dict__)

    def requirement(self, path: str) -> AuthRequirement | None:
        return next((r for r in self.require_auth if path.startswith(r.path_prefix)), None)

    def issue(self, kind: str, now: float) -> str:
        token = secrets.token_urlsafe(24)
        self.issued[token] = Issued(kind, now + self.expires_in)
        self.tokens_issued += 1
        return token


def _header(assertion: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise TokenRequestError("Malformed JWT in client_assertion") from None


def _claims(token: str, what: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenRequestError(f"Malformed JWT in {what}") from None
    return claims


def check_exp(claims: dict[str, Any], now: float, where: str) -> None:
    exp = claims.get("exp")
    if exp is None:
        raise TokenRequestError(f"Missing 'exp' claim {where}")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise TokenRequestError(f"Invalid 'exp' claim {where} - must be an integer")
    if exp < now:
        raise TokenRequestError(f"Invalid 'exp' claim {where} - JWT has expired")
    if where == AJ and exp > now + EXP_TOLERANCE:
        raise TokenRequestError(f"Invalid 'exp' claim {where} - more than 5 minutes in future")


def verify_client_assertion(form: dict[str, str], state: OAuthState, token_url: str, now: float) -> None:
    """Raise TokenRequestError with NHS's status and message for the first broken rule."""
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise TokenRequestError(f"Missing or invalid client_assertion_type - must be '{CLIENT_ASSERTION_TYPE}'")
    assertion = form.get("client_assertion")
    if not assertion:
        raise TokenRequestError("Missing client_assertion")
    header = _header(assertion)
    claims = _claims(assertion, "client_assertion")
    kid = header.get("kid")
    if not kid:
        raise TokenRequestError(f"Missing 'kid' header {AJ}")
    if header.get("typ") != "JWT":
        raise TokenRequestError(f"Invalid 'typ' header {AJ} - must be 'JWT'")
    if not header.get("alg"):
        raise TokenRequestError(f"Missing 'alg' header {AJ}")
    if header["alg"] != "RS512":
        raise TokenRequestError(f"Invalid 'alg' header {AJ} - unsupported JWT algorithm - must be 'RS512'")
    iss, sub = claims.get("iss"), claims.get("sub")
    if not iss or iss != sub:
        raise TokenRequestError(f"Missing or non-matching 'iss'/'sub' claims {AJ}")
    if iss not in state.clients:
        raise TokenRequestError(f"Invalid 'iss'/'sub' claims {AJ}", status=401)
    keys = state.clients[iss]
    if not keys:
        raise TokenRequestError(
            "You need to register a public key to use this authentication method - please contact support to configure",
            status=403,
            error="public_key error",
        )
    if kid not in keys:
        raise TokenRequestError(f"Invalid 'kid' header {AJ} - no matching public key", status=401)
    jti = claims.get("jti")
    if jti is None:
        raise TokenRequestError(f"Missing 'jti' claim {AJ}")
    if not isinstance(jti, str) or not jti:
        raise TokenRequestError(f"Invalid 'jti' claim {AJ} - must be a unique string value such as a GUID")
    if claims.get("aud") != token_url:
        raise TokenRequestError(f"Missing or invalid 'aud' claim {AJ}", status=401)
    check_exp(claims, now, AJ)
    try:
        public_key = jwt.PyJWK.from_dict(keys[kid])
        jwt.decode(
            assertion,
            public_key,
            algorithms=["RS512"],
            options={"verify_aud": False, "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise TokenRequestError("JWT signature verification failed", status=401, error="public_key error") from None
    if jti in state.seen_jti:
        raise TokenRequestError(f"Non-unique 'jti' claim {AJ}")
    state.seen_jti.add(jti)


def verify_subject_token(form: dict[str, str], now: float) -> None:
    """The CIS2 id_token's shape (no signature: the emulator has no CIS2 keys)."""
    if form.get("subject_token_type") != ID_TOKEN_TYPE:
        raise TokenRequestError(f"Missing or invalid subject_token_type - must be '{ID_TOKEN_TYPE}'")
    token = form.get("subject_token")
    if not token:
        raise TokenRequestError("Missing subject_token")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenRequestError("subject_token is invalid") from None
    where = "in subject_token JWT"
    if not header.get("kid"):
        raise TokenRequestError(f"Missing 'kid' header {where}")
    if not claims.get("iss"):
        raise TokenRequestError(f"Missing 'iss' claim {where}")
    check_exp(claims, now, where)


def token_routes(state: OAuthState) -> list[Route]:
    async def token(request: Request) -> Response:
        state.token_requests += 1
        now = time.time()
        try:
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
                raise TokenRequestError("Content-Type must be application/x-www-form-urlencoded")
            try:
                form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise TokenRequestError("Request body is not valid form data") from None
            grant = form.get("grant_type")
            if not grant:
                raise TokenRequestError("grant_type is missing")
            if grant not in ("client_credentials", TOKEN_EXCHANGE_GRANT):
                raise TokenRequestError("grant_type is invalid", error="unsupported_grant_type")
            token_url = str(request.url.replace(query=""))
            verify_client_assertion(form, state, token_url, now)
            if grant == TOKEN_EXCHANGE_GRANT:
                verify_subject_token(form, now)
        except TokenRequestError as err:
            return err.response()
        body: dict[str, Any] = {
            "access_token": state.issue("user" if grant == TOKEN_EXCHANGE_GRANT else "app", now),
            "expires_in": str(state.expires_in),  # NHS sends a string
            "token_type": "Bearer",
            "issued_at": str(int(now * 1000)),
        }
        if grant == TOKEN_EXCHANGE_GRANT:
            body.update(
                issued_token_type=ACCESS_TOKEN_TYPE,
                refresh_token=secrets.token_urlsafe(24),
                refresh_token_expires_in=CIS2_REFRESH_LIFETIME,
                refresh_count="0",
            )
        return JSONResponse(body)

    return [Route("/token", token, methods=["POST"])]


def oauth_control_routes(state: OAuthState) -> list[Route]:
    async def register_client(request: Request) -> Response:
        spec = await request.json()
        keys = {k["kid"]: k for k in (spec.get("jwks") or {}).get("keys", []) if isinstance(k, dict) and "kid" in k}
        state.clients.setdefault(str(spec["api_key"]), {}).update(keys)
        return JSONResponse({"api_key": spec["api_key"], "kids": sorted(state.clients[str(spec["api_key"])])})

    async def configure(request: Request) -> Response:
        spec = await request.json()
        if "expires_in" in spec:
            state.expires_in = int(spec["expires_in"])
        if "require_auth" in spec:
            state.require_auth = [AuthRequirement(**r) for r in spec["require_auth"]]
        return await stats(request)

    async def stats(request: Request) -> Response:
        return JSONResponse(
            {
                "token_requests": state.token_requests,
                "tokens_issued": state.tokens_issued,
                "bearer_accepted": state.bearer_accepted,
                "bearer_refused": state.bearer_refused,
                "expires_in": state.expires_in,
            }
        )

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/_control/oauth/clients", register_client, methods=["POST"]),
        Route("/_control/oauth/reset", reset, methods=["POST"]),
        Route("/_control/oauth", configure, methods=["POST"]),
        Route("/_control/oauth", stats, methods=["GET"]),
    ]


def _denied(diagnostics: str) -> Response:
    # Shape of NHS's API-platform 401 (shared/nhs-examples/ers/OperationOutcome-401.json).
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "login",
                "diagnostics": diagnostics,
                "details": {
                    "coding": [
                        {
                            "system": "https://fhir.nhs.uk/CodeSystem/NHSD-API-ErrorOrWarningCode",
                            "code": "ACCESS_DENIED",
                        }
                    ]
                },
            }
        ],
    }
    return JSONResponse(body, status_code=401, media_type="application/fhir+json")


class BearerMiddleware:
    """Demands a valid emulator-issued token on API paths that the control API marked."""

    def __init__(self, app: Any, state: OAuthState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        requirement = self.state.requirement(path) if path and not path.startswith(("/_control", "/oauth2")) else None
        if requirement is None:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        issued = self.state.issued.get(token)
        problem = None
        if not token:
            problem = "Missing access token"
        elif issued is None or issued.expires_at < time.time():
            problem = "Invalid access token"
        elif requirement.kind != "any" and issued.kind != requirement.kind:
            problem = (
                f"Access token is not {'a user-restricted' if requirement.kind == 'user' else 'an application'} token"
            )
        if problem:
            self.state.bearer_refused += 1
            await _denied(problem)(scope, receive, send)
            return
        self.state.bearer_accepted += 1
        await self.app(scope, receive, send)
