"""Our own races never fail a request: lost writes of token caches and the tenant row are harmless."""

from __future__ import annotations

import pytest

from shared.errors import ConcurrencyConflict, ReauthRequired
from shared.identity.guard import require_calendar_access
from shared.identity.tokens import app_token, user_token
from shared.models import ConsentStatus, Tenant, User
from tests.kit import ALL_ROLES, TENANT_A, FakeDeps, FakeTenants, consented, sign_in


class AlwaysLosingTenants(FakeTenants):
    """Every update loses its ETag race, as under a burst of other writers."""

    def __init__(self) -> None:
        super().__init__()
        self.updates = 0

    def update_tenant(self, tenant: Tenant) -> Tenant:
        self.updates += 1
        raise ConcurrencyConflict("another writer changed the tenant")


def test_a_lost_race_on_the_users_token_cache_does_not_fail_the_request() -> None:
    deps = FakeDeps()
    consented(deps)
    credential = sign_in(deps)
    deps.identity.refresh_user_caches = True  # each call refreshes and must store the new cache
    deps.token_caches.lose_races = True
    ctx = require_calendar_access(deps, credential)
    assert ctx.user_access is not None and ctx.user_access.token == "user-token-u1"
    assert deps.token_caches.saves >= 1  # it did try, and lost


def test_a_lost_race_on_the_tenants_app_token_cache_does_not_fail_the_request() -> None:
    deps = FakeDeps()
    consented(deps)
    deps.token_caches.lose_races = True
    assert app_token(deps, TENANT_A).token == f"app-token-{TENANT_A}"
    assert deps.token_caches.saves == 1


def test_app_token_refreshes_leave_the_tenant_row_alone() -> None:
    deps = FakeDeps()
    tenant = consented(deps)
    for _ in range(3):  # each answer carries a changed token cache, as a refresh does
        app_token(deps, TENANT_A, known=tenant)
        app_token(deps, TENANT_A)
    assert deps.tenants.get_tenant(TENANT_A).etag == tenant.etag
    assert deps.token_caches.load_cache(TENANT_A, "app") is not None


def test_a_tenant_row_that_keeps_losing_races_does_not_fail_the_request() -> None:
    deps = FakeDeps()
    deps.tenants = AlwaysLosingTenants()
    deps.identity.roles[TENANT_A] = ALL_ROLES
    stale = deps.tenants.create_tenant(
        Tenant(tenant_id=TENANT_A, consent_status=ConsentStatus.PARTIAL, granted_roles=ALL_ROLES[:1])
    )
    token = app_token(deps, TENANT_A, known=stale)  # proves more than the row says: it tries to record that
    assert token.roles == ALL_ROLES
    assert deps.tenants.updates > 1


def test_marking_a_user_for_reauth_survives_lost_races() -> None:
    deps = FakeDeps()
    consented(deps)
    sign_in(deps)
    user = deps.users.get_user(TENANT_A, "u1")
    deps.identity.revoked_users.add("u1")

    def losing_update(record: User) -> User:
        raise ConcurrencyConflict("another request marked the user first")

    deps.users.update_user = losing_update  # type: ignore[method-assign]
    with pytest.raises(ReauthRequired):  # the refusal is the answer, never the lost race
        user_token(deps, user)
