"""Sign-in state of the local Entra ID: automatic sign-in, browser sessions, pending requests, auth codes.

Kept in ``world.extra`` so a world reset clears it along with the directory.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from devtools.cloud.state import World

PROMPTS = ("login", "none", "consent", "select_account")
DEMO_PASSWORD = "Passw0rd!"  # every fixture user's password unless directory.json gives another
CODE_LIFETIME_SECONDS = 600  # "Authorization codes are short lived ... about 10 minutes."
PENDING_LIFETIME_SECONDS = 3600
CONSENT_ANSWERS = {"accept": "accept", "yes": "accept", "decline": "decline", "no": "decline", "cancel": "decline"}
_SLOT = "identity.signin"


@dataclass
class AutoSignIn:
    """How a simulated browser answers /authorize and /adminconsent without a person.

    ``user_id`` None means: sign in as the request's ``login_hint``. The browser counts as having a
    session for that user, so ``prompt=none`` succeeds when no consent is missing.
    """

    user_id: str | None
    consent: str = "accept"  # accept | decline
    grant_roles: list[str] | None = None  # admin consent: grant only these roles (None: all)


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    tenant_id: str
    user_id: str
    request_scope: str  # the scope string as asked at /authorize
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    redeemed: bool = False


@dataclass
class Pending:
    """An /authorize or /adminconsent request waiting for a person on the sign-in or consent page."""

    kind: str  # authorize | adminconsent_v2 | adminconsent
    tenant_segment: str
    params: dict[str, str]
    user_id: str | None = None
    created: float = field(default_factory=time.time)


@dataclass
class SignInState:
    auto: AutoSignIn | None = None
    codes: dict[str, AuthCode] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # session cookie value -> user id
    # session cookie value -> ids of every account signed in with this browser (the account picker's list)
    accounts: dict[str, list[str]] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)


def signin_state(world: World) -> SignInState:
    return world.module_state(_SLOT, SignInState)


def new_opaque(prefix: str = "") -> str:
    """An unguessable value for codes, refresh tokens, sessions and page contexts."""
    return prefix + secrets.token_urlsafe(48)


def add_pending(world: World, pending: Pending) -> str:
    state = signin_state(world)
    key = new_opaque()
    now = time.time()
    with world.lock:
        for old_key in [k for k, p in state.pending.items() if now - p.created > PENDING_LIFETIME_SECONDS]:
            del state.pending[old_key]
        state.pending[key] = pending
    return key


def add_code(world: World, code: AuthCode) -> str:
    state = signin_state(world)
    value = new_opaque("1.A")
    now = time.time()
    with world.lock:
        for old in [k for k, c in state.codes.items() if c.expires_at < now - CODE_LIFETIME_SECONDS]:
            del state.codes[old]
        state.codes[value] = code
    return value
