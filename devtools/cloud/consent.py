"""Scopes and consent: parsing requested scopes, who consented to what, granting and withdrawing.

Entra's model, reduced to what the service meets: delegated permissions are consented per user
(``User.delegated_consents``) or tenant-wide by an admin (``Tenant.delegated_consents``);
application permissions (roles) only by an admin (``Tenant.app_consents``). An app is "in" a
tenant (has a service principal there) once anyone in it consented to anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from devtools.cloud.aadsts import AadstsError
from devtools.cloud.state import AppRegistration, Tenant, User, World

GRAPH_PREFIXES = ("https://graph.microsoft.com/", "00000003-0000-0000-c000-000000000000/")
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")

# Graph delegated permissions this cloud knows, in Microsoft's casing. Scope names are
# case-insensitive in Entra; tokens carry the canonical spelling.
GRAPH_DELEGATED = (
    "User.Read",
    "User.ReadBasic.All",
    "User.Read.All",
    "Calendars.Read",
    "Calendars.ReadWrite",
    "Calendars.Read.Shared",
    "Calendars.ReadWrite.Shared",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "Mail.Read",
    "Mail.Send",
    "Place.Read.All",
    "Directory.Read.All",
)
# Delegated permissions whose consent needs an admin (Graph marks them "Admin consent required").
ADMIN_ONLY_DELEGATED = frozenset({"User.Read.All", "Place.Read.All", "Directory.Read.All"})
GRAPH_APPLICATION = (
    "Calendars.Read",
    "Calendars.ReadWrite",
    "User.Read.All",
    "MailboxSettings.Read",
    "MailboxSettings.ReadWrite",
    "Mail.Send",
    "Place.Read.All",
    "Directory.Read.All",
)
_CANONICAL = {name.lower(): name for name in (*GRAPH_DELEGATED, *GRAPH_APPLICATION)}


@dataclass(frozen=True)
class ScopeRequest:
    """A parsed ``scope`` parameter: OIDC scopes, Graph permissions (canonical short names), ``.default``."""

    oidc: frozenset[str]
    graph: frozenset[str]
    default: bool
    uri_form: bool  # Graph scopes were written as https://graph.microsoft.com/X (echoed the same way)

    def delegated_needed(self, app: AppRegistration) -> frozenset[str]:
        """What the user must have consented to: ``.default`` stands for the app's static permissions."""
        needed = set(self.graph) | set(self.oidc)
        if self.default:
            needed |= set(app.delegated_scopes)
        return frozenset(needed)


def canonical_graph_scope(name: str) -> str | None:
    return _CANONICAL.get(name.lower())


def parse_scopes(raw: str, app: AppRegistration) -> ScopeRequest:
    """Parse a space-separated scope string; raises ``AadstsError`` for unknown scopes or resources."""
    oidc: set[str] = set()
    graph: set[str] = set()
    default = False
    uri_form = False
    resources: set[str] = set()
    for item in raw.split():
        lowered = item.lower()
        if lowered in OIDC_SCOPES:
            oidc.add(lowered)
            continue
        name = item
        prefix = next((p for p in GRAPH_PREFIXES if lowered.startswith(p)), None)
        if prefix is not None:
            name = item[len(prefix) :]
            uri_form = True
            resources.add("graph")
        elif "/" in item or ":" in item:
            resource = item.rsplit("/", 1)[0]
            raise AadstsError("invalid_resource", 500011, resource=resource, tenant="the tenant")
        else:
            # A bare permission name means Microsoft Graph, as in Entra.
            resources.add("graph")
        if name.lower() == ".default":
            default = True
            continue
        canonical = canonical_graph_scope(name)
        if canonical is None:
            raise AadstsError("invalid_client", 650053, app_name=app.display_name, scope=name)
        graph.add(canonical)
    if len(resources) > 1:
        raise AadstsError("invalid_scope", 28000)
    return ScopeRequest(oidc=frozenset(oidc), graph=frozenset(graph), default=default, uri_form=uri_form)


def consented_delegated(world: World, user: User, client_id: str) -> frozenset[str]:
    """Delegated scopes (OIDC and Graph) the user may use with the app: own consent plus tenant-wide."""
    with world.lock:
        own = user.delegated_consents.get(client_id, set())
        tenant = world.tenants.get(user.tenant_id)
        tenant_wide = tenant.delegated_consents.get(client_id, set()) if tenant else set()
        return frozenset(own | tenant_wide)


def consented_graph(world: World, user: User, client_id: str) -> frozenset[str]:
    return frozenset(s for s in consented_delegated(world, user, client_id) if s not in OIDC_SCOPES)


def missing_consent(world: World, user: User, app: AppRegistration, request: ScopeRequest) -> frozenset[str]:
    return request.delegated_needed(app) - consented_delegated(world, user, app.client_id)


def needs_admin(scopes: Iterable[str]) -> bool:
    return any(s in ADMIN_ONLY_DELEGATED for s in scopes)


def app_in_tenant(world: World, tenant: Tenant, client_id: str) -> bool:
    """Whether the app has a service principal in the tenant: someone consented to something."""
    with world.lock:
        if client_id in tenant.app_consents or client_id in tenant.delegated_consents:
            return True
        return any(client_id in u.delegated_consents for u in world.users.values() if u.tenant_id == tenant.tenant_id)


def grant_user_consent(world: World, user: User, client_id: str, scopes: Iterable[str]) -> None:
    with world.lock:
        user.delegated_consents.setdefault(client_id, set()).update(scopes)


def grant_tenant_consent(
    world: World,
    tenant: Tenant,
    app: AppRegistration,
    *,
    roles: Iterable[str] | None = None,
    delegated: Iterable[str] | None = None,
) -> None:
    """Admin consent: application roles (all the app requires unless given) and tenant-wide delegated scopes."""
    granted_roles = set(app.required_roles if roles is None else roles)
    unknown = granted_roles - set(app.required_roles)
    if unknown:
        raise ValueError(f"app {app.client_id} does not request roles {sorted(unknown)}")
    with world.lock:
        tenant.app_consents[app.client_id] = granted_roles
        tenant.delegated_consents.setdefault(app.client_id, set()).update(
            app.delegated_scopes if delegated is None else delegated
        )


def withdraw_tenant_consent(world: World, tenant: Tenant, client_id: str) -> None:
    """Remove the admin's grants (roles and tenant-wide delegated scopes) for the app."""
    with world.lock:
        tenant.app_consents.pop(client_id, None)
        tenant.delegated_consents.pop(client_id, None)


def withdraw_user_consent(world: World, user: User, client_id: str) -> None:
    with world.lock:
        user.delegated_consents.pop(client_id, None)


def scope_string(graph: Iterable[str], oidc: Iterable[str], *, uri_form: bool) -> str:
    """The ``scope`` value of a token response, Graph permissions written the way they were asked for."""
    graph_part = [f"{GRAPH_PREFIXES[0]}{s}" if uri_form else s for s in sorted(graph)]
    oidc_part = [s for s in OIDC_SCOPES if s in set(oidc) and s != "offline_access"]
    return " ".join([*graph_part, *oidc_part])
