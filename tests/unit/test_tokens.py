"""The one renewal rule for refused tokens (``shared.identity.tokens``) and the paced consent re-check, over fakes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from shared.errors import AdminConsentRequired, GraphRequestFailed, ReauthRequired
from shared.identity.guard import require_calendar_access
from shared.identity.tenant_consent import CONSENT_REVERIFY_INTERVAL, ensure_tenant_consent
from shared.identity.tokens import call_with_renewal, with_app_token, with_user_token
from shared.models import AccessToken, ConsentStatus, TokenHealth, User
from tests.kit import TENANT_A, USER, FakeDeps, consented, sign_in

CLAIMS = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'


def _refused(claims: str | None = None) -> GraphRequestFailed:
    return GraphRequestFailed("refused", status=401, reason="unauthorized", claims_challenge=claims)


class Graph:
    """A Graph call that refuses the tokens named in ``refuse`` and records every token it saw."""

    def __init__(self, *refuse: str, claims: str | None = None) -> None:
        self.refuse = set(refuse)
        self.claims = claims
        self.seen: list[str] = []

    def __call__(self, token: AccessToken) -> str:
        self.seen.append(token.token)
        if token.token in self.refuse:
            raise _refused(self.claims)
        return f"read with {token.token}"


def _token(value: str) -> AccessToken:
    return AccessToken(token=value, tenant_id=TENANT_A)


def _renewals(*tokens: str) -> tuple[Callable[[GraphRequestFailed], AccessToken], list[GraphRequestFailed]]:
    refusals: list[GraphRequestFailed] = []
    queue = list(tokens)

    def renew(refusal: GraphRequestFailed) -> AccessToken:
        refusals.append(refusal)
        return _token(queue.pop(0))

    return renew, refusals


# ---- call_with_renewal -------------------------------------------------------------------------------
def test_an_accepted_token_is_used_once_and_never_renewed() -> None:
    graph = Graph()
    renew, refusals = _renewals("new")
    assert call_with_renewal(graph, _token("old"), renew) == "read with old"
    assert graph.seen == ["old"] and refusals == []


def test_a_refused_token_is_renewed_once_with_the_claims_challenge_and_the_call_retried() -> None:
    graph = Graph("old", claims=CLAIMS)
    renew, refusals = _renewals("new")
    assert call_with_renewal(graph, _token("old"), renew) == "read with new"
    assert graph.seen == ["old", "new"]
    assert [r.claims_challenge for r in refusals] == [CLAIMS]


def test_a_second_refusal_reaches_the_caller_after_exactly_one_renewal() -> None:
    graph = Graph("old", "new", "newer")
    renew, refusals = _renewals("new", "newer")
    with pytest.raises(GraphRequestFailed) as caught:
        call_with_renewal(graph, _token("old"), renew)
    assert caught.value.reason == "unauthorized"
    assert graph.seen == ["old", "new"] and len(refusals) == 1


def test_other_graph_failures_are_not_renewals() -> None:
    def forbidden(token: AccessToken) -> str:
        raise GraphRequestFailed("no", status=403, reason="forbidden")

    renew, refusals = _renewals("new")
    with pytest.raises(GraphRequestFailed):
        call_with_renewal(forbidden, _token("old"), renew)
    assert refusals == []


# ---- delegated ---------------------------------------------------------------------------------------
def _signed_in() -> tuple[FakeDeps, User, AccessToken]:
    deps = FakeDeps()
    consented(deps)
    ctx = require_calendar_access(deps, sign_in(deps))
    assert ctx.user_access is not None
    return deps, ctx.user, ctx.user_access


def test_a_refused_user_token_is_refreshed_with_the_challenge_and_the_call_succeeds() -> None:
    deps, user, token = _signed_in()
    graph = Graph(token.token, claims=CLAIMS)
    assert with_user_token(deps, user, graph, token=token) == f"read with {token.token}-1"
    assert deps.identity.calls[-1] == f"user:{USER.user_id}:refresh"
    assert deps.identity.claims_challenges[-1] == CLAIMS
    assert deps.users.get_user(TENANT_A, user.user_id).token_health is TokenHealth.OK
    # The refused token is not handed out again.
    assert with_user_token(deps, user, Graph(token.token)) == f"read with {token.token}-1"


def test_a_refused_refresh_is_reauth_required_and_marks_the_user() -> None:
    deps, user, token = _signed_in()
    deps.identity.revoked_users.add(user.user_id)
    graph = Graph(token.token)
    with pytest.raises(ReauthRequired):
        with_user_token(deps, user, graph, token=token)
    assert graph.seen == [token.token]  # no second call without a new token
    assert deps.users.get_user(TENANT_A, user.user_id).token_health is TokenHealth.REAUTH_REQUIRED


def test_a_new_token_graph_refuses_too_is_reauth_required_after_one_refresh() -> None:
    deps, user, token = _signed_in()
    graph = Graph(token.token, f"{token.token}-1", f"{token.token}-2")
    with pytest.raises(ReauthRequired) as caught:
        with_user_token(deps, user, graph, token=token)
    assert caught.value.details["reason"] == "token_refused"
    assert graph.seen == [token.token, f"{token.token}-1"]
    assert deps.identity.calls.count(f"user:{USER.user_id}:refresh") == 1
    assert deps.users.get_user(TENANT_A, user.user_id).token_health is TokenHealth.REAUTH_REQUIRED


def test_a_refresh_refused_because_admin_consent_was_withdrawn_blames_the_tenant_not_the_user() -> None:
    deps, user, token = _signed_in()
    del deps.identity.roles[TENANT_A]  # the tenant gives the app nothing any more
    deps.identity.withdrawn_delegated.add(TENANT_A)
    with pytest.raises(AdminConsentRequired):
        with_user_token(deps, user, Graph(token.token), token=token)
    assert deps.users.get_user(TENANT_A, user.user_id).token_health is TokenHealth.OK
    assert deps.tenants.get_tenant(TENANT_A).consent_status is ConsentStatus.NEEDS_ATTENTION


# ---- app-only ----------------------------------------------------------------------------------------
def test_a_refused_app_token_is_replaced_once_and_the_call_retried() -> None:
    deps, _user, _token_ = _signed_in()
    first = f"app-token-{TENANT_A}"
    seen: list[str] = []

    def call(token: AccessToken) -> str:
        seen.append(token.token)
        if len(seen) == 1:
            raise _refused()
        return "ok"

    assert with_app_token(deps, TENANT_A, call) == "ok"
    assert seen[0] == first and len(seen) == 2
    assert deps.identity.calls[-1] == f"app:{TENANT_A}:renew"
    assert deps.tenants.get_tenant(TENANT_A).consent_status is ConsentStatus.CONSENTED


def test_an_app_token_refused_twice_marks_the_tenant_needs_attention() -> None:
    deps, _user, _token_ = _signed_in()
    seen: list[str] = []

    def call(token: AccessToken) -> str:
        seen.append(token.token)
        raise _refused()

    with pytest.raises(AdminConsentRequired):
        with_app_token(deps, TENANT_A, call)
    assert len(seen) == 2
    assert deps.identity.calls.count(f"app:{TENANT_A}:renew") == 1
    assert deps.tenants.get_tenant(TENANT_A).consent_status is ConsentStatus.NEEDS_ATTENTION


# ---- consent re-checked afresh -----------------------------------------------------------------------
def test_withdrawn_consent_is_noticed_within_the_reverify_interval_from_a_new_app_token() -> None:
    deps, _user, _token_ = _signed_in()  # the guard asked Microsoft just now
    del deps.identity.roles[TENANT_A]
    deps.clock.advance(seconds=CONSENT_REVERIFY_INTERVAL.total_seconds() / 2)
    asked = len(deps.identity.calls)
    assert ensure_tenant_consent(deps, TENANT_A).consent_status is ConsentStatus.CONSENTED
    assert len(deps.identity.calls) == asked  # paced: no token request within the interval
    deps.clock.advance(seconds=CONSENT_REVERIFY_INTERVAL.total_seconds() / 2)
    with pytest.raises(AdminConsentRequired):
        ensure_tenant_consent(deps, TENANT_A)
    assert timedelta(seconds=30) > CONSENT_REVERIFY_INTERVAL
    assert deps.tenants.get_tenant(TENANT_A).consent_status is ConsentStatus.NEEDS_ATTENTION
