"""The contract suite's shared fixture: a consented tenant and a signed-in recruiter on the running app."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import Stack
from tests.kit import CONTOSO_ADMIN, KEY, RECRUITER, consent
from tests.kit import browser_sign_in as sign_in

SESSION_COOKIE = "ics_session"


@pytest.fixture
def signed_in(stack: Stack) -> Iterator[str]:
    """A consented Contoso with its Interviews mailbox set, and a recruiter's session credential."""
    from devtools.cloud import controls
    from shared.bootstrap import set_container
    from shared.sync.subscriptions import forget_worker_memory

    controls.reset_world(stack.world)
    forget_worker_memory()
    os.environ["TABLE_PREFIX"] = "ct" + uuid.uuid4().hex[:10]
    set_container(None)
    try:
        consent(stack)
        admin = sign_in(stack, CONTOSO_ADMIN)
        settings = {"interviews_mailbox": "interviews@contoso.example", "sync_mailbox": "sync@contoso.example"}
        answer = admin.request("PUT", "/api/tenants/me/settings", headers=KEY, json=settings)
        assert answer.status_code == 200, answer.text
        recruiter = sign_in(stack, RECRUITER)
        host = recruiter.service_url.split("://", 1)[1]
        yield recruiter.cookies[host][SESSION_COOKIE]
    finally:
        os.environ.pop("TABLE_PREFIX", None)
        set_container(None)
