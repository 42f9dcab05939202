"""An address with "/" in its local part, sent encoded (%2F) in a Graph path, names one user, not two segments."""

from __future__ import annotations

from starlette.testclient import TestClient

from devtools.cloud.graph.testing import app_only
from devtools.cloud.state import User, World, new_id

CONTOSO = "contoso.example"


def test_an_encoded_slash_stays_in_the_user_segment(world: World, client: TestClient) -> None:
    tenant = world.tenant_by_id_or_domain(CONTOSO)
    assert tenant is not None
    address = "a/b@contoso.example"
    user_id = new_id()
    world.users[user_id] = User(
        tenant.tenant_id, user_id, address, "Slash", address, mailbox_settings={"userPurpose": "user"}
    )
    headers = app_only(world, CONTOSO, ["User.Read.All", "MailboxSettings.Read"])
    found = client.get("/v1.0/users/a%2Fb@contoso.example", headers=headers)
    assert found.status_code == 200, found.text
    assert found.json()["userPrincipalName"] == address
    unknown = client.get("/v1.0/users/%7B%2F@qcxcf.io/mailboxSettings/userPurpose", headers=headers)
    assert unknown.status_code == 404  # nobody in the tenant: not an unknown path segment
    batch = client.post(
        "/v1.0/$batch",
        headers=headers,
        json={"requests": [{"id": "1", "method": "GET", "url": "/users/%7B%2F@qcxcf.io/mailboxSettings/userPurpose"}]},
    )
    assert batch.json()["responses"][0]["status"] == 404
