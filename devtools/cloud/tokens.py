"""Signing keys, token minting and Graph's bearer-token check for the local cloud.

Access tokens for Graph follow the shape Microsoft issues for Graph even through the v2.0
endpoint: a v1.0-format JWT (``ver`` "1.0", ``appid``, ``aud`` = ``https://graph.microsoft.com``,
the resource URI the client asked for), issued by ``{authority_host}/{tid}/`` (the local stand-in
for ``https://sts.windows.net/{tid}/``). ID tokens are v2.0 tokens issued by
``{authority_host}/{tid}/v2.0``, the ``issuer`` the discovery document announces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request

from devtools.cloud.common import Caller, GraphError
from devtools.cloud.state import User, World

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# Graph accepts both spellings of its own audience.
GRAPH_AUDIENCES = (GRAPH_RESOURCE, GRAPH_APP_ID)
DEFAULT_ACCESS_TOKEN_LIFETIME = 3600
ID_TOKEN_LIFETIME = 3600
# Used only when no server announced its address (tokens minted before start or without HTTP).
DEFAULT_AUTHORITY_HOST = "https://127.0.0.1"

_KEY_SLOT = "identity.signing_key"
_BASE_SLOT = "identity.base_url"
_ISSUED_SLOT = "identity.access_tokens"
_key_lock = threading.Lock()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: bytes
    public_jwk: dict[str, Any]


@dataclass
class IssuedAccessTokens:
    """Bookkeeping that lets a control invalidate outstanding access tokens before they expire."""

    # uti -> (tenant_id, user_id or None, client_id)
    owners: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    # Tokens issued to a client that declared the "cp1" capability (continuous access evaluation):
    # Graph answers such a token, once revoked, with a claims challenge. uti -> when it was revoked.
    cae_capable: set[str] = field(default_factory=set)
    revoked_at: dict[str, int] = field(default_factory=dict)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _new_signing_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Microsoft's key ids are thumbprint-like strings; a digest of the modulus serves the same purpose.
    kid = base64.urlsafe_b64encode(hashlib.sha256(pem).digest()[:20]).rstrip(b"=").decode("ascii")
    jwk = {"kty": "RSA", "use": "sig", "kid": kid, "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}
    return SigningKey(kid=kid, private_pem=pem, public_jwk=jwk)


def signing_key(world: World) -> SigningKey:
    """The world's token-signing key, created on first use (key generation is slow, so only once)."""
    key = world.extra.get(_KEY_SLOT)
    if key is None:
        with _key_lock:
            key = world.extra.get(_KEY_SLOT)
            if key is None:
                key = _new_signing_key()
                world.extra[_KEY_SLOT] = key
    assert isinstance(key, SigningKey)
    return key


def jwks(world: World) -> dict[str, Any]:
    return {"keys": [signing_key(world).public_jwk]}


def set_authority_host(world: World, base_url: str) -> None:
    """Record the address the cloud is served at; issuers and discovery URLs derive from it."""
    world.extra[_BASE_SLOT] = base_url.rstrip("/")


def authority_host(world: World, request: Request | None = None) -> str:
    base = world.extra.get(_BASE_SLOT)
    if isinstance(base, str):
        return base
    if request is not None:
        return str(request.base_url).rstrip("/")
    return DEFAULT_AUTHORITY_HOST


def v2_issuer(world: World, tenant_id: str, request: Request | None = None) -> str:
    return f"{authority_host(world, request)}/{tenant_id}/v2.0"


def v1_issuer(world: World, tenant_id: str, request: Request | None = None) -> str:
    return f"{authority_host(world, request)}/{tenant_id}/"


def _issued(world: World) -> IssuedAccessTokens:
    return world.module_state(_ISSUED_SLOT, IssuedAccessTokens)


def _sign(world: World, claims: dict[str, Any]) -> str:
    key = signing_key(world)
    return jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"})


def pairwise_subject(user_id: str, client_id: str) -> str:
    """Entra's ``sub`` is unique per user and application; a digest reproduces that property."""
    digest = hashlib.sha256(f"{user_id}|{client_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")[:43]


def access_token_lifetime(world: World) -> int:
    lifetime = world.switches.access_token_lifetime
    return DEFAULT_ACCESS_TOKEN_LIFETIME if lifetime is None else lifetime


Names = list[str] | set[str] | frozenset[str]


def _app_only_claims(tenant_id: str, client_id: str, roles: Names | None) -> dict[str, Any]:
    # For app-only tokens oid and sub are the service principal; one per app and tenant.
    sp_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tenant_id}:{client_id}"))
    claims: dict[str, Any] = {"idtyp": "app", "oid": sp_id, "sub": sp_id}
    if roles:
        claims["roles"] = sorted(roles)
    return claims


def _user_claims(world: World, tenant_id: str, client_id: str, user_id: str, scopes: Names | None) -> dict[str, Any]:
    with world.lock:
        user = world.users.get(user_id)
    if user is None or user.tenant_id != tenant_id:
        raise ValueError(f"no user {user_id} in tenant {tenant_id}")
    return {
        "idtyp": "user",
        "oid": user.id,
        "sub": pairwise_subject(user.id, client_id),
        "scp": " ".join(sorted(scopes or [])),
        "name": user.display_name,
        "upn": user.user_principal_name,
        "unique_name": user.user_principal_name,
        "given_name": user.given_name,
        "family_name": user.surname,
    }


def issue_access_token(
    world: World,
    *,
    tenant_id: str,
    client_id: str,
    user_id: str | None = None,
    scopes: Names | None = None,
    roles: Names | None = None,
    lifetime: int | None = None,
    audience: str = GRAPH_RESOURCE,
    cae: bool = False,
) -> str:
    """Mint a Graph access token: delegated (``user_id`` and ``scopes``) or app-only (``roles``).

    Claims are present only when they have a value, as in Entra: an app-only token whose app was
    granted no roles carries no ``roles`` claim at all. The issuer comes from the world's announced
    address only (never from a request), so Graph's check agrees however the token was minted.
    """
    if user_id is None and scopes:
        raise ValueError("delegated scopes need a user_id")
    now = int(time.time())
    ttl = access_token_lifetime(world) if lifetime is None else lifetime
    uti = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": v1_issuer(world, tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "appid": client_id,
        "appidacr": "1",  # client authenticated with a secret
        "tid": tenant_id,
        "uti": uti,
        "ver": "1.0",
    }
    if user_id is None:
        claims.update(_app_only_claims(tenant_id, client_id, roles))
    else:
        claims.update(_user_claims(world, tenant_id, client_id, user_id, scopes))
        claims = {k: v for k, v in claims.items() if k == "scp" or v not in ("", None)}
    if cae:
        claims["xms_cc"] = ["cp1"]  # the client capability the token was issued for
    book = _issued(world)
    with world.lock:
        book.owners[uti] = (tenant_id, user_id, client_id)
        if cae:
            book.cae_capable.add(uti)
    return _sign(world, claims)


def declares_cae(claims_parameter: str | None) -> bool:
    """Whether a token request's ``claims`` parameter declares the "cp1" client capability
    (``{"access_token": {"xms_cc": {"values": ["cp1"]}}}``, as MSAL sends for ``client_capabilities``)."""
    if not claims_parameter:
        return False
    try:
        value = json.loads(claims_parameter)
    except ValueError:
        return False
    access = value.get("access_token") if isinstance(value, dict) else None
    xms_cc = access.get("xms_cc") if isinstance(access, dict) else None
    values = xms_cc.get("values") if isinstance(xms_cc, dict) else None
    return isinstance(values, list) and any(str(v).lower() == "cp1" for v in values)


def claims_challenge_header(world: World, revoked_at: int) -> str:
    """Graph's 401 challenge to a revoked CAE-capable token (Entra's "Claims challenges, claims requests
    and client capabilities"): a claims request for a token issued after the revocation."""
    request = {"access_token": {"nbf": {"essential": True, "value": str(revoked_at)}}}
    encoded = base64.b64encode(json.dumps(request, separators=(",", ":")).encode()).decode("ascii")
    return (
        f'Bearer realm="", authorization_uri="{authority_host(world)}/common/oauth2/authorize", '
        f'client_id="{GRAPH_APP_ID}", error="insufficient_claims", claims="{encoded}"'
    )


GLOBAL_ADMINISTRATOR_TEMPLATE_ID = "62e90394-69f5-4237-9190-012177145e10"


def issue_id_token(
    world: World,
    *,
    user: User,
    client_id: str,
    nonce: str | None,
    request: Request | None = None,
) -> str:
    """A v2.0 ID token for ``client_id`` describing ``user``."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": v2_issuer(world, user.tenant_id, request),
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME,
        "name": user.display_name,
        "oid": user.id,
        "preferred_username": user.user_principal_name,
        "email": user.mail,
        "sub": pairwise_subject(user.id, client_id),
        "tid": user.tenant_id,
        "ver": "2.0",
    }
    if nonce:
        claims["nonce"] = nonce
    if user.is_admin:
        # Directory role template ids, as Entra emits them when the app registration's
        # groupMembershipClaims includes DirectoryRole: here, Global Administrator.
        claims["wids"] = [GLOBAL_ADMINISTRATOR_TEMPLATE_ID]
    return _sign(world, claims)


def id_token_audience(world: World, token: str) -> str | None:
    """The ``aud`` (client id) of an ID token this cloud signed, whatever its age; None for anything else."""
    key = signing_key(world)
    try:
        claims = jwt.decode(
            token,
            jwt.PyJWK(key.public_jwk, algorithm="RS256"),
            algorithms=["RS256"],
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError:
        return None
    aud = claims.get("aud")
    return aud.lower() if isinstance(aud, str) else None


def expire_access_tokens(
    world: World, *, tenant_id: str | None = None, user_id: str | None = None, client_id: str | None = None
) -> int:
    """Make outstanding access tokens matching every given filter invalid; returns how many."""
    book = _issued(world)
    count = 0
    with world.lock:
        for uti, (tid, uid, cid) in book.owners.items():
            if tenant_id is not None and tid != tenant_id:
                continue
            if user_id is not None and uid != user_id:
                continue
            if client_id is not None and cid != client_id:
                continue
            if uti not in book.revoked:
                book.revoked.add(uti)
                book.revoked_at[uti] = int(time.time())
                count += 1
    return count


def _unauthorized(message: str) -> GraphError:
    return GraphError(401, "InvalidAuthenticationToken", message)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def verify_access_token(world: World, token: str) -> Caller:
    """Check a Graph access token the way Graph does; raise ``GraphError(401, ...)`` when it fails.

    The messages are the ones Graph answers with (``InvalidAuthenticationToken``): "Access token
    has expired or is not yet valid.", "Access token validation failure. Invalid audience.",
    "CompactToken parsing failed ..." for something that is not a JWT at all.
    """
    claims = _decode(world, token)
    tenant_id = str(claims["tid"])
    _check_issuer_and_revocation(world, claims, tenant_id)
    user_id: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset(str(r) for r in claims.get("roles", []))
    if claims.get("idtyp") == "user":
        user_id = str(claims["oid"])
        with world.lock:
            user = world.users.get(user_id)
        if user is None or user.tenant_id != tenant_id:
            raise _unauthorized("Access token validation failure.")
        scopes = frozenset(str(claims["scp"]).split())
    return Caller(
        tenant_id=tenant_id, client_id=str(claims.get("appid", "")), user_id=user_id, scopes=scopes, roles=roles
    )


def _decode(world: World, token: str) -> dict[str, Any]:
    """The claims of a token this cloud signed for Graph, checked for signature, lifetime and audience.

    A token whose signature and audience were checked once is remembered (it cannot change: the text is
    what was signed); its lifetime is checked again on every use, and the issuer and revocation checks
    that follow run every time."""
    key = signing_key(world)
    remembered = _verified.get((key.kid, token))
    if remembered is not None:
        now = time.time()
        if now >= float(remembered["exp"]) or float(remembered["nbf"]) > now:
            raise _unauthorized("Access token has expired or is not yet valid.")
        return remembered
    claims = _verify(world, token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[(key.kid, token)] = claims
    return claims


# Tokens whose signature and audience held, by signing key and text: each caller sends the same token with
# every request until it expires, and verifying an RS256 signature is most of the cost of authenticating.
_VERIFIED_MAX = 4096
_verified: dict[tuple[str, str], dict[str, Any]] = {}


def _verify(world: World, token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as err:
        raise _unauthorized("CompactToken parsing failed with error code: 80049217") from err
    key = signing_key(world)
    if header.get("kid") != key.kid or header.get("alg") != "RS256":
        raise _unauthorized("Access token validation failure.")
    public_key = jwt.PyJWK(key.public_jwk, algorithm="RS256")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=["RS256"],
            audience=list(GRAPH_AUDIENCES),
            options={"require": ["exp", "iat", "nbf", "aud", "iss", "tid"]},
            leeway=0,
        )
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError) as err:
        raise _unauthorized("Access token has expired or is not yet valid.") from err
    except jwt.InvalidAudienceError as err:
        raise _unauthorized("Access token validation failure. Invalid audience.") from err
    except jwt.PyJWTError as err:
        raise _unauthorized("Access token validation failure.") from err
    return claims


def _check_issuer_and_revocation(world: World, claims: dict[str, Any], tenant_id: str) -> None:
    """The tenant and issuer must be this cloud's; a revoked token is challenged (CAE) or refused."""
    with world.lock:
        tenant = world.tenants.get(tenant_id)
        book = _issued(world)
        uti = claims.get("uti")
        revoked = uti in book.revoked
        revoked_at = book.revoked_at.get(uti) if uti in book.cae_capable else None
    if tenant is None:
        raise _unauthorized("Access token validation failure. Invalid issuer.")
    if claims["iss"] != v1_issuer(world, tenant_id):
        raise _unauthorized("Access token validation failure. Invalid issuer.")
    if revoked and revoked_at is not None:
        # Continuous access evaluation: a token of a client that declared "cp1" gets a claims
        # challenge, which the client passes to the token endpoint for a new token. The message is
        # the one public reports of Graph's answer quote; Microsoft's pages document only the header.
        raise GraphError(
            401,
            "InvalidAuthenticationToken",
            "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: "
            "TokenIssuedBeforeRevocationTimestamp",
            headers={"WWW-Authenticate": claims_challenge_header(world, revoked_at)},
        )
    if revoked:
        # A client without the capability is not challenged: its token is answered like an expired one.
        raise _unauthorized("Access token has expired or is not yet valid.")


def authenticate(world: World, request: Request) -> Caller:
    """The caller of a Graph request, from its ``Authorization: Bearer`` header.

    Raises ``GraphError(401, "InvalidAuthenticationToken", ...)`` when the header is missing or the
    token's signature, lifetime, audience, issuer or tenant does not hold.
    """
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("Access token is empty.")
    return verify_access_token(world, token)
