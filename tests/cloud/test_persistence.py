"""The local cloud keeps its world across restarts (CA, signing key, grants, refresh tokens, events),
writes it safely and not once per request, and starts over on request."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
import requests

from devtools.azurite import free_port
from devtools.cloud import controls, notify, persist, tokens
from devtools.cloud.seed import load_world
from devtools.cloud.server import RunningCloud, start_cloud
from devtools.cloud.tls import create_tls_files
from tests.cloud.identity_support import CLIENT_ID, CONTOSO, GRAPH_CALENDARS, MEGAN, REDIRECT_URI, SECRET

GRAPH_READ = "https://graph.microsoft.com/User.Read"


def _client(cloud: RunningCloud) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(cloud.ca_cert)), trust_env=False, timeout=10)


def _msal(cloud: RunningCloud, cache: msal.SerializableTokenCache) -> msal.ConfidentialClientApplication:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE (the session cloud's) wins over session.verify
    session.verify = str(cloud.ca_bundle)
    return msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=SECRET,
        authority=f"{cloud.authority_host}/{CONTOSO}",
        instance_discovery=False,
        token_cache=cache,
        http_client=session,
    )


def _sign_in(cloud: RunningCloud, cache: msal.SerializableTokenCache) -> dict[str, Any]:
    app = _msal(cloud, cache)
    flow = app.initiate_auth_code_flow([GRAPH_CALENDARS, GRAPH_READ], redirect_uri=REDIRECT_URI)
    with _client(cloud) as browser:
        answer = browser.get(flow["auth_uri"])
    assert answer.status_code == 302, answer.text
    query = dict(httpx.URL(answer.headers["location"]).params)
    result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, query)
    assert "access_token" in result, result
    return result


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A data folder and a port for a cloud that keeps its world (the same address across restarts)."""
    yield tmp_path, free_port()


def test_a_restarted_cloud_keeps_its_ca_signing_key_grants_refresh_tokens_and_events(
    kept: tuple[Path, int],
) -> None:
    data_dir, port = kept
    first = start_cloud(port=port, data_dir=data_dir, keep_world=True)
    try:
        assert first.restored is False
        controls.grant_admin_consent(first.world, CONTOSO)
        controls.set_auto_sign_in(first.world, MEGAN)
        cache = msal.SerializableTokenCache()
        signed_in = _sign_in(first, cache)
        with _client(first) as graph:
            created = graph.post(
                f"{first.graph_url}/me/events",
                headers={"Authorization": f"Bearer {signed_in['access_token']}"},
                json={
                    "subject": "Interview: kept across restarts",
                    "start": {"dateTime": "2030-03-04T15:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2030-03-04T16:00:00", "timeZone": "UTC"},
                },
            )
        assert created.status_code == 201, created.text
        ca_before = first.ca_cert.read_bytes()
    finally:
        first.stop()

    second = start_cloud(port=port, data_dir=data_dir, keep_world=True)
    try:
        assert second.restored is True
        assert second.ca_cert.read_bytes() == ca_before
        with _client(second) as graph:
            auth = {"Authorization": f"Bearer {signed_in['access_token']}"}
            # The access token from before the restart still verifies: same key, same issuer.
            assert graph.get(f"{second.graph_url}/me", headers=auth).status_code == 200
            event = graph.get(f"{second.graph_url}/me/events/{created.json()['id']}", headers=auth)
            assert event.status_code == 200, event.text
            assert event.json()["subject"] == "Interview: kept across restarts"
        # The refresh token from before the restart still redeems (what the service's stored caches hold).
        app = _msal(second, cache)
        account = app.get_accounts(username=MEGAN)[0]
        refreshed = app.acquire_token_silent_with_error([GRAPH_CALENDARS], account=account, force_refresh=True)
        assert refreshed is not None and "access_token" in refreshed, refreshed
        # The admin's consent is still there: an app-only token carries the roles.
        app_only = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
        assert "access_token" in app_only, app_only
        assert "Calendars.ReadWrite" in tokens.verify_access_token(second.world, app_only["access_token"]).roles
    finally:
        second.stop()


def test_forgetting_the_saved_world_starts_over_but_keeps_the_ca(kept: tuple[Path, int]) -> None:
    data_dir, port = kept
    first = start_cloud(port=port, data_dir=data_dir, keep_world=True)
    try:
        controls.grant_admin_consent(first.world, CONTOSO)
        old_key = tokens.signing_key(first.world).kid
        ca_before = first.ca_cert.read_bytes()
    finally:
        first.stop()

    assert persist.forget_saved(data_dir) is True
    second = start_cloud(port=port, data_dir=data_dir, keep_world=True)
    try:
        assert second.restored is False
        assert tokens.signing_key(second.world).kid != old_key
        assert controls.get_tenant(second.world, CONTOSO).app_consents == {}
        assert second.ca_cert.read_bytes() == ca_before
    finally:
        second.stop()


def test_a_world_file_that_cannot_be_read_is_moved_aside_and_the_fixtures_are_used(kept: tuple[Path, int]) -> None:
    data_dir, port = kept
    persist.world_path(data_dir).write_text('{"format": "something else"}')
    cloud = start_cloud(port=port, data_dir=data_dir, keep_world=True)
    try:
        assert cloud.restored is False
        assert [p.name.startswith("world.json.unreadable-") for p in data_dir.glob("world.json.*")] == [True]
        assert controls.get_user(cloud.world, MEGAN).display_name == "Megan Bowen"
    finally:
        cloud.stop()


def test_a_snapshot_restores_users_grants_refresh_tokens_events_and_subscriptions() -> None:
    world = load_world()
    controls.grant_admin_consent(world, CONTOSO)
    controls.grant_user_consent(world, MEGAN, scopes=["Calendars.ReadWrite"])
    megan = controls.get_user(world, MEGAN)
    megan.mailbox_settings["timeZone"] = "UTC"
    key = tokens.signing_key(world)
    notify.state(world)  # the subscriptions slot exists even when empty
    document = json.loads(json.dumps(persist.snapshot(world)))

    restored = load_world()
    persist.restore(restored, document)

    assert tokens.signing_key(restored) == key
    assert restored.tenants == world.tenants
    assert restored.users[megan.id] == megan
    assert restored.events == world.events
    assert restored.groups == world.groups
    assert restored.refresh_tokens == world.refresh_tokens


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_storm_of_requests_is_written_once_after_a_quiet_period(tmp_path: Path) -> None:
    world = load_world()
    clock = _Clock()
    written: list[bytes] = []
    writer = persist.WorldWriter(
        world, tmp_path, quiet=0.5, max_delay=5.0, clock=clock, write=lambda _path, data: written.append(data)
    )
    for _ in range(500):
        writer.changed()
        clock.now += 0.001
    assert writer.save_if_due() == pytest.approx(0.5, abs=0.01)
    assert written == []

    clock.now += 0.5
    assert writer.save_if_due() is None
    assert len(written) == 1

    # Nothing changed since: a later request does not rewrite the same world.
    writer.changed()
    clock.now += 1
    writer.save_if_due()
    assert len(written) == 1


def test_changes_that_never_pause_are_still_written_after_the_longest_delay(tmp_path: Path) -> None:
    world = load_world()
    clock = _Clock()
    written: list[bytes] = []
    writer = persist.WorldWriter(
        world, tmp_path, quiet=0.5, max_delay=5.0, clock=clock, write=lambda _path, data: written.append(data)
    )
    while clock.now < 4.9:
        writer.changed()
        controls.get_user(world, MEGAN).job_title = f"Recruiter {clock.now:.1f}"
        assert writer.save_if_due() is not None
        clock.now += 0.2
    clock.now = 5.0
    writer.save_if_due()
    assert len(written) == 1


def test_stopping_the_writer_writes_what_changed(tmp_path: Path) -> None:
    world = load_world()
    writer = persist.WorldWriter(world, tmp_path, quiet=60, max_delay=600)
    writer.start()
    controls.grant_admin_consent(world, CONTOSO)
    writer.changed()
    writer.stop()

    restored = load_world()
    assert persist.load_saved(restored, tmp_path) is True
    assert controls.get_tenant(restored, CONTOSO).app_consents
    assert persist.world_path(tmp_path).stat().st_mode & 0o077 == 0


def test_a_write_that_fails_leaves_the_previous_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "world.json"
    persist.write_atomically(path, b'{"old": true}')

    def broken_fsync(_fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        persist.write_atomically(path, b'{"new": true}')

    assert path.read_bytes() == b'{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world.json"]


def test_kept_certificates_are_reused_and_fresh_ones_are_not(tmp_path: Path) -> None:
    first = create_tls_files(tmp_path, keep=True)
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = create_tls_files(tmp_path, keep=True)
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == (ca, server)
    assert again.ca_key.stat().st_mode & 0o077 == 0

    fresh = create_tls_files(tmp_path / "other")
    assert fresh.ca_cert.read_bytes() != ca
