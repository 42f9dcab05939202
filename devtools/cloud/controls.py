"""Test controls for identity: plain functions on a ``World`` (the ``/_control`` routes call these).

Users and tenants are named by id, UPN or domain; unknown names raise ``KeyError``, bad arguments
``ValueError``.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devtools.cloud import consent, tokens
from devtools.cloud.seed import load_world
from devtools.cloud.signin import CONSENT_ANSWERS, AutoSignIn, signin_state
from devtools.cloud.state import AppRegistration, Tenant, User, World

SERVICE_CLIENT_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
# The signing key and the announced address outlive a reset: tokens and discovery stay consistent.
KEEP_ON_RESET = frozenset({"identity.signing_key", "identity.base_url"})
REVOCATION_CODES = {"revoked": 50173, "expired": 70008, "inactive": 700082}


@dataclass(frozen=True)
class NewApp:
    """What ``add_app_registration`` returns: the registration and its (only) client secret."""

    app: AppRegistration
    secret: str


def get_tenant(world: World, name: str) -> Tenant:
    tenant = world.tenant_by_id_or_domain(name)
    if tenant is None:
        raise KeyError(f"no tenant {name}")
    return tenant


def get_user(world: World, name: str) -> User:
    """A user by id or UPN in any tenant (UPNs are unique across tenants here: domains differ)."""
    with world.lock:
        user = world.users.get(name.lower())
        if user is not None:
            return user
        for tenant in world.tenants.values():
            found = world.find_user(tenant.tenant_id, name)
            if found is not None:
                return found
    raise KeyError(f"no user {name}")


def get_app(world: World, client_id: str) -> AppRegistration:
    with world.lock:
        app = world.apps.get(client_id.lower())
    if app is None:
        raise KeyError(f"no app registration {client_id}")
    return app


def reset_world(world: World) -> None:
    """Back to the fixture state: directory, calendars, no consents, no tokens, no sessions."""
    world.reset_from(load_world(), keep_extra=KEEP_ON_RESET)


def set_auto_sign_in(
    world: World,
    user: str | None,
    *,
    consent: str = "accept",
    grant_roles: Iterable[str] | None = None,
) -> None:
    """Answer /authorize and /adminconsent automatically as ``user`` (None: as the request's login_hint).

    ``consent``: accept|yes, or decline|no|cancel (the Cancel button: access_denied / AADSTS65004).
    ``grant_roles``: for admin consent, grant only these of the app's roles (partial consent).
    """
    answer = CONSENT_ANSWERS.get(consent.lower())
    if answer is None:
        raise ValueError(f"consent must be one of {sorted(CONSENT_ANSWERS)}")
    user_id = get_user(world, user).id if user is not None else None
    state = signin_state(world)
    with world.lock:
        state.auto = AutoSignIn(
            user_id=user_id, consent=answer, grant_roles=list(grant_roles) if grant_roles is not None else None
        )


def auto_sign_in_setting(world: World) -> dict[str, Any] | None:
    """What ``set_auto_sign_in`` last set, in its own terms (None: the click-through pages), so that
    whoever changes it can put it back."""
    state = signin_state(world)
    with world.lock:
        auto = state.auto
        if auto is None:
            return None
        user = world.users.get(auto.user_id) if auto.user_id else None
        return {
            "user": user.user_principal_name if user else None,
            "consent": auto.consent,
            "grant_roles": list(auto.grant_roles) if auto.grant_roles is not None else None,
        }


def clear_auto_sign_in(world: World) -> None:
    """Back to the click-through pages."""
    state = signin_state(world)
    with world.lock:
        state.auto = None


def sign_out_everywhere(world: World) -> None:
    """Forget every browser session (``prompt=none`` then answers login_required)."""
    state = signin_state(world)
    with world.lock:
        state.sessions.clear()


def revoke_refresh_tokens(world: World, user: str, *, reason: str = "revoked") -> int:
    """Revoke all of a user's refresh tokens; returns how many.

    ``reason``: "revoked" (AADSTS50173, e.g. password reset or revokeSignInSessions),
    "expired" (AADSTS70008) or "inactive" (AADSTS700082, unused too long).
    """
    code = REVOCATION_CODES.get(reason)
    if code is None:
        raise ValueError(f"reason must be one of {sorted(REVOCATION_CODES)}")
    target = get_user(world, user)
    count = 0
    with world.lock:
        for grant in world.refresh_tokens.values():
            if grant.user_id == target.id and not grant.revoked:
                grant.revoked = True
                grant.revoked_code = code
                count += 1
    return count


def revoke_sign_in_sessions(world: World, user: str) -> int:
    """Graph's ``revokeSignInSessions`` for a user: every refresh token (AADSTS50173) and browser
    session ends, and continuous access evaluation revokes the access tokens already issued (a client
    that declared "cp1" is challenged, others are refused). Returns how many refresh tokens ended.
    ``expire_access_tokens`` alone is the other half: access tokens revoked, refresh tokens kept."""
    count = revoke_refresh_tokens(world, user, reason="revoked")
    target = get_user(world, user)
    tokens.expire_access_tokens(world, user_id=target.id)
    state = signin_state(world)
    with world.lock:
        for cookie in [c for c, uid in state.sessions.items() if uid == target.id]:
            del state.sessions[cookie]
    return count


def grant_admin_consent(
    world: World,
    tenant: str,
    *,
    client_id: str = SERVICE_CLIENT_ID,
    roles: Iterable[str] | None = None,
    delegated: Iterable[str] | None = None,
) -> None:
    """What an admin's consent to ``/.default`` records: roles (all the app requires unless given)
    and tenant-wide delegated scopes (the app's configured ones unless given)."""
    consent.grant_tenant_consent(
        world, get_tenant(world, tenant), get_app(world, client_id), roles=roles, delegated=delegated
    )


def withdraw_admin_consent(world: World, tenant: str, *, client_id: str = SERVICE_CLIENT_ID) -> None:
    """Remove the tenant's grants to the app: app-only tokens lose roles, tenant-wide delegated consent goes."""
    consent.withdraw_tenant_consent(world, get_tenant(world, tenant), client_id.lower())


def grant_user_consent(
    world: World, user: str, scopes: Iterable[str] | None = None, *, client_id: str = SERVICE_CLIENT_ID
) -> None:
    """A user's own consent to delegated scopes (the app's configured ones unless given)."""
    app = get_app(world, client_id)
    wanted = list(app.delegated_scopes if scopes is None else scopes)
    canonical = []
    for scope in wanted:
        name = scope.lower() if scope.lower() in consent.OIDC_SCOPES else consent.canonical_graph_scope(scope)
        if name is None:
            raise ValueError(f"unknown scope {scope}")
        canonical.append(name)
    consent.grant_user_consent(world, get_user(world, user), app.client_id, canonical)


def withdraw_user_consent(world: World, user: str, *, client_id: str = SERVICE_CLIENT_ID) -> None:
    """Remove the user's own consent (refreshing then answers consent_required / AADSTS65001)."""
    consent.withdraw_user_consent(world, get_user(world, user), client_id.lower())


def set_access_token_lifetime(world: World, seconds: int | None) -> None:
    """Lifetime of access tokens issued from now on (None: the default hour)."""
    if seconds is not None and seconds < 1:
        raise ValueError("seconds must be positive")
    with world.lock:
        world.switches.access_token_lifetime = seconds


def expire_access_tokens(
    world: World, *, tenant: str | None = None, user: str | None = None, client_id: str | None = None
) -> int:
    """Make outstanding access tokens (of a tenant, a user, an app, or all) fail Graph's check now."""
    return tokens.expire_access_tokens(
        world,
        tenant_id=get_tenant(world, tenant).tenant_id if tenant is not None else None,
        user_id=get_user(world, user).id if user is not None else None,
        client_id=client_id.lower() if client_id is not None else None,
    )


def add_app_registration(
    world: World,
    *,
    display_name: str,
    client_id: str | None = None,
    secret: str | None = None,
    redirect_uris: Iterable[str] = (),
    required_roles: Iterable[str] = (),
    delegated_scopes: Iterable[str] = ("openid", "profile", "email", "offline_access", "User.Read"),
) -> NewApp:
    """Register another multi-tenant app (for negative tests); returns it with its client secret."""
    app = AppRegistration(
        client_id=(client_id or str(uuid.uuid4())).lower(),
        display_name=display_name,
        secrets=[secret or secrets.token_urlsafe(30)],
        redirect_uris=list(redirect_uris),
        required_roles=list(required_roles),
        delegated_scopes=list(delegated_scopes),
    )
    with world.lock:
        if app.client_id in world.apps:
            raise ValueError(f"app {app.client_id} already exists")
        world.apps[app.client_id] = app
    return NewApp(app=app, secret=app.secrets[0])


def delete_tenant(world: World, tenant: str) -> None:
    """Remove a tenant and its users: its tokens stop working, its sign-ins fail."""
    target = get_tenant(world, tenant)
    with world.lock:
        del world.tenants[target.tenant_id]
        for user_id in [u.id for u in world.users.values() if u.tenant_id == target.tenant_id]:
            del world.users[user_id]
