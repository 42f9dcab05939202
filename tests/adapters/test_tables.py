"""Table Storage repositories against a real Azurite: round trips, ETag concurrency, flows, encryption at rest."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from devtools.azurite import Azurite, free_port
from shared.adapters.crypto import AesGcmCipher, generate_key
from shared.adapters.tables import (
    CHUNK_CHARS,
    FLOWS,
    MAILBOX_SYNC,
    SESSIONS,
    SESSIONS_BY_USER,
    TOKEN_CACHES,
    RecordTooLarge,
    TableStorage,
    TableSubscriptionStore,
    state_hash,
)
from shared.errors import (
    ConcurrencyConflict,
    ConfigurationError,
    InvalidFlowState,
    NotFound,
    TokenIntegrityError,
    UpstreamUnavailable,
)
from shared.models import (
    Booking,
    BookingStatus,
    ConsentStatus,
    FlowKind,
    MailboxSync,
    Session,
    Subscription,
    Tenant,
    TokenHealth,
    User,
)
from tests.kit import StaticKeySource

if TYPE_CHECKING:
    from tests.kit import FakeClock

TENANT = "11111111-1111-1111-1111-111111111111"
OTHER_TENANT = "22222222-2222-2222-2222-222222222222"
ALICE = "aaaaaaaa-0000-0000-0000-000000000001"
BOB = "bbbbbbbb-0000-0000-0000-000000000002"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def raw_table(azurite: Azurite, prefix: str, name: str) -> TableClient:
    return TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(prefix + name)


def tenant(**overrides: Any) -> Tenant:
    values: dict[str, Any] = dict(
        tenant_id=TENANT,
        consent_status=ConsentStatus.PARTIAL,
        granted_roles=("Calendars.ReadWrite",),
        missing_roles=("User.Read.All", "MailboxSettings.Read"),
        consented_at=T0,
        checked_at=T0 + timedelta(minutes=5, microseconds=123456),
        interviews_mailbox="interviews@contoso.example",
    )
    values.update(overrides)
    return Tenant(**values)


def subscription(**overrides: Any) -> Subscription:
    values: dict[str, Any] = dict(
        tenant_id=TENANT,
        subscription_id="9f1c2d3e-aaaa-bbbb-cccc-000000000001",
        resource="users/interviews@contoso.example/events",
        mailbox="interviews@contoso.example",
        expires_at=T0 + timedelta(days=2),
        client_state_hash="ab" * 32,
    )
    values.update(overrides)
    return Subscription(**values)


# --- round trips -------------------------------------------------------------------------


def test_tenant_round_trips_with_tuples_enums_and_utc_datetimes(storage: TableStorage) -> None:
    created = storage.tenants.create_tenant(tenant())
    assert created.etag
    read = storage.tenants.get_tenant(TENANT)
    assert read == created
    assert read.checked_at is not None and read.checked_at.tzinfo is UTC
    assert type(read.checked_at) is datetime
    assert read.consent_status is ConsentStatus.PARTIAL
    assert read.sync_mailbox is None
    assert storage.tenants.list_tenants() == [read]


def test_datetimes_in_other_zones_are_stored_as_utc_and_naive_ones_are_refused(storage: TableStorage) -> None:
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    storage.tenants.create_tenant(tenant(consented_at=plus_two))
    assert storage.tenants.get_tenant(TENANT).consented_at == T0
    with pytest.raises(ValueError, match="timezone-aware"):
        storage.tenants.create_tenant(tenant(tenant_id=OTHER_TENANT, consented_at=datetime(2026, 1, 1)))


def test_user_round_trips_and_lists_by_tenant(storage: TableStorage) -> None:
    alice = storage.users.create_user(
        User(
            tenant_id=TENANT,
            user_id=ALICE,
            username="alice@contoso.example",
            display_name="Alice",
            granted_scopes=("Calendars.ReadWrite", "offline_access"),
            features=("recruiter",),
            token_health=TokenHealth.REAUTH_REQUIRED,
            signed_in_at=T0,
        )
    )
    storage.users.create_user(User(tenant_id=OTHER_TENANT, user_id=BOB, username="bob@fabrikam.example"))
    assert storage.users.get_user(TENANT, ALICE) == alice
    assert storage.users.list_users(TENANT) == [alice]
    assert storage.users.list_users("no-such-tenant") == []
    storage.users.delete_user(TENANT, ALICE)
    storage.users.delete_user(TENANT, ALICE)  # absent: still fine
    with pytest.raises(NotFound):
        storage.users.get_user(TENANT, ALICE)


def test_booking_round_trips(storage: TableStorage) -> None:
    booking = Booking(
        tenant_id=TENANT,
        booking_id="bk-1",
        mailbox=ALICE,
        start=T0,
        end=T0 + timedelta(hours=1),
        subject="Interview: backend engineer",
        status=BookingStatus.BOOKED,
        transaction_id="tx-1",
        event_id="AAMkAD=",
        attendees=("candidate@example.org", "panel@contoso.example"),
        created_by=ALICE,
        created_at=T0,
    )
    created = storage.bookings.create_booking(booking)
    assert storage.bookings.get_booking(TENANT, "bk-1") == created
    updated = storage.bookings.update_booking(
        dataclasses.replace(created, status=BookingStatus.CANCELLED, event_id=None)
    )
    read = storage.bookings.get_booking(TENANT, "bk-1")
    assert read == updated and read.status is BookingStatus.CANCELLED and read.event_id is None
    assert storage.bookings.list_bookings(TENANT) == [read]
    storage.bookings.delete_booking(TENANT, "bk-1")
    assert storage.bookings.list_bookings(TENANT) == []


def test_session_round_trips_and_a_users_sessions_can_all_be_deleted(storage: TableStorage) -> None:
    def session(n: int, user: str) -> Session:
        return Session(
            session_hash=f"{n:064x}", tenant_id=TENANT, user_id=user, created_at=T0, expires_at=T0 + timedelta(hours=8)
        )

    a1 = storage.sessions.create_session(session(1, ALICE))
    storage.sessions.create_session(session(2, ALICE))
    b1 = storage.sessions.create_session(session(3, BOB))
    assert storage.sessions.get_session(a1.session_hash) == a1
    revoked = storage.sessions.update_session(dataclasses.replace(a1, revoked=True))
    assert storage.sessions.get_session(a1.session_hash).revoked is True
    assert revoked.etag != a1.etag

    storage.sessions.delete_user_sessions(TENANT, ALICE)

    for n in (1, 2):
        with pytest.raises(NotFound):
            storage.sessions.get_session(f"{n:064x}")
    assert storage.sessions.get_session(b1.session_hash) == b1
    storage.sessions.delete_session(b1.session_hash)
    storage.sessions.delete_session(b1.session_hash)
    with pytest.raises(NotFound):
        storage.sessions.get_session(b1.session_hash)


def test_deleting_sessions_leaves_no_index_rows(storage: TableStorage, azurite: Azurite, table_prefix: str) -> None:
    storage.sessions.create_session(
        Session(session_hash="ab" * 32, tenant_id=TENANT, user_id=ALICE, created_at=T0, expires_at=T0)
    )
    storage.sessions.delete_session("ab" * 32)
    storage.sessions.create_session(
        Session(session_hash="cd" * 32, tenant_id=TENANT, user_id=ALICE, created_at=T0, expires_at=T0)
    )
    storage.sessions.delete_user_sessions(TENANT, ALICE)
    assert list(raw_table(azurite, table_prefix, SESSIONS_BY_USER).list_entities()) == []
    assert list(raw_table(azurite, table_prefix, SESSIONS).list_entities()) == []


def test_subscription_round_trips_and_is_found_by_id_alone(storage: TableStorage) -> None:
    created = storage.subscriptions.create_subscription(subscription())
    other = storage.subscriptions.create_subscription(subscription(tenant_id=OTHER_TENANT, subscription_id="sub-2"))
    assert storage.subscriptions.get_subscription(TENANT, created.subscription_id) == created
    assert storage.subscriptions.find_subscription(created.subscription_id) == created
    assert storage.subscriptions.find_subscription("sub-2") == other
    secret = storage.subscriptions.find_secret(created.subscription_id)
    assert (secret.tenant_id, secret.client_state_hash) == (TENANT, "ab" * 32)
    assert storage.subscriptions.list_subscriptions(TENANT) == [created]
    assert sorted(s.subscription_id for s in storage.subscriptions.list_subscriptions()) == sorted(
        [created.subscription_id, "sub-2"]
    )

    storage.subscriptions.delete_subscription(TENANT, created.subscription_id)
    storage.subscriptions.delete_subscription(TENANT, created.subscription_id)
    with pytest.raises(NotFound):
        storage.subscriptions.find_subscription(created.subscription_id)
    with pytest.raises(NotFound):
        storage.subscriptions.find_subscription("never-created")


def test_token_cache_round_trips_and_missing_is_none(storage: TableStorage) -> None:
    assert storage.token_caches.load_cache(TENANT, ALICE) is None
    storage.token_caches.save_cache(TENANT, ALICE, '{"RefreshToken": {"x": {"secret": "rt-1"}}}')
    storage.token_caches.save_cache(TENANT, "app", '{"AccessToken": {}}')
    assert storage.token_caches.load_cache(TENANT, ALICE) == '{"RefreshToken": {"x": {"secret": "rt-1"}}}'
    assert storage.token_caches.load_cache(TENANT, "app") == '{"AccessToken": {}}'
    storage.token_caches.delete_cache(TENANT, ALICE)
    storage.token_caches.delete_cache(TENANT, ALICE)
    assert storage.token_caches.load_cache(TENANT, ALICE) is None


def test_token_cache_larger_than_a_property_round_trips_in_chunks(
    storage: TableStorage, azurite: Azurite, table_prefix: str
) -> None:
    big = '{"AccessToken": "' + "é-token-" * 25_000 + '"}'  # ~225 KB of UTF-8, several 64 KiB properties
    assert len(big.encode("utf-8")) > 3 * 64 * 1024
    storage.token_caches.save_cache(TENANT, ALICE, big)
    assert storage.token_caches.load_cache(TENANT, ALICE) == big
    raw = raw_table(azurite, table_prefix, TOKEN_CACHES).get_entity(TENANT, ALICE)
    assert raw["chunks"] > 1
    assert all(len(raw[f"c{i}"]) <= CHUNK_CHARS for i in range(raw["chunks"]))

    # A smaller cache replaces the whole row: no stale chunks left behind.
    storage.token_caches.save_cache(TENANT, ALICE, "{}")
    raw = raw_table(azurite, table_prefix, TOKEN_CACHES).get_entity(TENANT, ALICE)
    assert raw["chunks"] == 1 and "c1" not in raw
    assert storage.token_caches.load_cache(TENANT, ALICE) == "{}"


def test_token_cache_past_the_entity_limit_is_refused_clearly(storage: TableStorage) -> None:
    with pytest.raises(RecordTooLarge, match="token cache"):
        storage.token_caches.save_cache(TENANT, ALICE, "x" * 1_000_000)
    assert storage.token_caches.load_cache(TENANT, ALICE) is None


# --- concurrency -------------------------------------------------------------------------


def test_update_with_a_stale_etag_is_refused(storage: TableStorage) -> None:
    first = storage.tenants.create_tenant(tenant())
    second_writer = storage.tenants.update_tenant(dataclasses.replace(first, consent_status=ConsentStatus.CONSENTED))
    with pytest.raises(ConcurrencyConflict):
        storage.tenants.update_tenant(dataclasses.replace(first, consent_status=ConsentStatus.NEEDS_ATTENTION))
    assert storage.tenants.get_tenant(TENANT) == second_writer


@pytest.mark.parametrize("store", ["users", "bookings", "sessions", "subscriptions"])
def test_every_store_refuses_a_stale_etag(storage: TableStorage, store: str) -> None:
    record: Any
    if store == "users":
        record = storage.users.create_user(User(tenant_id=TENANT, user_id=ALICE, username="a"))
        update, field = storage.users.update_user, {"display_name": "A"}
    elif store == "bookings":
        record = storage.bookings.create_booking(
            Booking(tenant_id=TENANT, booking_id="b", mailbox=ALICE, start=T0, end=T0, subject="s")
        )
        update, field = storage.bookings.update_booking, {"subject": "t"}
    elif store == "sessions":
        record = storage.sessions.create_session(
            Session(session_hash="e" * 64, tenant_id=TENANT, user_id=ALICE, created_at=T0, expires_at=T0)
        )
        update, field = storage.sessions.update_session, {"revoked": True}
    else:
        record = storage.subscriptions.create_subscription(subscription())
        update, field = storage.subscriptions.update_subscription, {"last_error": "renewal failed"}
    update(dataclasses.replace(record, **field))
    with pytest.raises(ConcurrencyConflict):
        update(dataclasses.replace(record, **field))
    with pytest.raises(ValueError, match="ETag"):
        update(dataclasses.replace(record, etag=None))


def test_creating_an_existing_record_is_refused(storage: TableStorage) -> None:
    storage.tenants.create_tenant(tenant())
    with pytest.raises(ConcurrencyConflict):
        storage.tenants.create_tenant(tenant(consent_status=ConsentStatus.NEEDS_ATTENTION))
    storage.users.create_user(User(tenant_id=TENANT, user_id=ALICE, username="a"))
    with pytest.raises(ConcurrencyConflict):
        storage.users.create_user(User(tenant_id=TENANT, user_id=ALICE, username="b"))
    storage.subscriptions.create_subscription(subscription())
    with pytest.raises(ConcurrencyConflict):
        storage.subscriptions.create_subscription(subscription())
    assert storage.tenants.get_tenant(TENANT).consent_status is ConsentStatus.PARTIAL


def test_get_missing_raises_not_found_and_delete_missing_succeeds(storage: TableStorage) -> None:
    with pytest.raises(NotFound):
        storage.tenants.get_tenant(TENANT)
    with pytest.raises(NotFound):
        storage.bookings.get_booking(TENANT, "none")
    with pytest.raises(NotFound):
        storage.subscriptions.get_subscription(TENANT, "none")
    storage.tenants.delete_tenant(TENANT)
    storage.bookings.delete_booking(TENANT, "none")
    storage.subscriptions.delete_subscription(TENANT, "none")


# --- used flow states --------------------------------------------------------------------


def test_a_state_is_accepted_once_and_stored_only_hashed(
    storage: TableStorage, clock: FakeClock, azurite: Azurite, table_prefix: str
) -> None:
    expires = clock.now() + timedelta(seconds=600)
    storage.flows.consume_state(FlowKind.SIGNIN, state_hash("state-abc"), expires)
    rows = list(raw_table(azurite, table_prefix, FLOWS).list_entities())
    assert [r["RowKey"] for r in rows] == [state_hash("state-abc")]
    assert "state-abc" not in repr(rows)
    with pytest.raises(InvalidFlowState):
        storage.flows.consume_state(FlowKind.SIGNIN, state_hash("state-abc"), expires)
    # Kinds are apart: a consent state never blocks a sign-in state or the other way round.
    storage.flows.consume_state(FlowKind.CONSENT, state_hash("state-abc"), expires)


def test_expired_used_states_are_purged_and_live_ones_kept(storage: TableStorage, clock: FakeClock) -> None:
    storage.flows.consume_state(FlowKind.SIGNIN, state_hash("old"), clock.now() + timedelta(seconds=60))
    storage.flows.consume_state(FlowKind.SIGNIN, state_hash("live"), clock.now() + timedelta(seconds=3600))
    clock.advance(seconds=61)
    assert storage.flows.purge_expired_states(clock.now()) == 1
    with pytest.raises(InvalidFlowState):
        storage.flows.consume_state(FlowKind.SIGNIN, state_hash("live"), clock.now())
    storage.flows.consume_state(FlowKind.SIGNIN, state_hash("old"), clock.now() + timedelta(seconds=60))


def race_consumes(storage: TableStorage, state: str, racers: int, expires: datetime) -> list[str]:
    """Start ``racers`` threads accepting one state at the same moment; return each outcome."""
    barrier = threading.Barrier(racers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        barrier.wait()
        try:
            storage.flows.consume_state(FlowKind.SIGNIN, state_hash(state), expires)
            result = "taken"
        except InvalidFlowState:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=take) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_two_racing_callbacks_with_one_state_cannot_both_succeed(storage: TableStorage, clock: FakeClock) -> None:
    for round_no in range(5):
        outcomes = race_consumes(storage, f"race-{round_no}", 6, clock.now() + timedelta(seconds=600))
        assert sorted(outcomes) == ["refused"] * 5 + ["taken"]


def test_expired_sessions_are_purged_with_their_index_rows(
    storage: TableStorage, clock: FakeClock, azurite: Azurite, table_prefix: str
) -> None:
    def session(name: str, ttl: int) -> Session:
        return Session(
            session_hash=name,
            tenant_id=TENANT,
            user_id=ALICE,
            created_at=clock.now(),
            expires_at=clock.now() + timedelta(seconds=ttl),
        )

    storage.sessions.create_session(session("ended", 60))
    storage.sessions.create_session(session("live", 3600))
    clock.advance(seconds=61)
    assert storage.sessions.purge_expired_sessions(clock.now()) == 1
    assert storage.sessions.get_session("live").session_hash == "live"
    with pytest.raises(NotFound):
        storage.sessions.get_session("ended")
    index = [r["RowKey"] for r in raw_table(azurite, table_prefix, SESSIONS_BY_USER).list_entities()]
    assert index == ["live"]


# --- encryption at rest ------------------------------------------------------------------


def test_no_secret_plaintext_reaches_any_stored_property(
    storage: TableStorage, clock: FakeClock, azurite: Azurite, table_prefix: str
) -> None:
    storage.token_caches.save_cache(TENANT, ALICE, '{"refresh_token": "rt-secret-marker-9c"}')
    storage.subscriptions.create_subscription(subscription())
    storage.flows.consume_state(
        FlowKind.SIGNIN, state_hash("flow-state-secret-marker-4d"), clock.now() + timedelta(seconds=600)
    )
    storage.sessions.create_session(
        Session(session_hash="f" * 64, tenant_id=TENANT, user_id=ALICE, created_at=T0, expires_at=T0)
    )
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    names = [t.name for t in service.list_tables() if t.name.startswith(table_prefix)]
    assert len(names) >= 5
    dump = repr([dict(e) for n in names for e in service.get_table_client(n).list_entities()])
    for marker in (
        "rt-secret-marker-9c",
        "client-state-secret-marker-5b1e",
        "delta-secret-marker-77",
        "flow-state-secret-marker-4d",
    ):
        assert marker not in dump
    assert "v1.k1." in dump


def test_tampered_token_cache_fails_integrity(storage: TableStorage, azurite: Azurite, table_prefix: str) -> None:
    storage.token_caches.save_cache(TENANT, ALICE, '{"rt": "x"}')
    table = raw_table(azurite, table_prefix, TOKEN_CACHES)
    raw = table.get_entity(TENANT, ALICE)
    token: str = raw["c0"]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    table.update_entity({"PartitionKey": TENANT, "RowKey": ALICE, "c0": flipped}, UpdateMode.MERGE)
    with pytest.raises(TokenIntegrityError, match="altered, or moved"):
        storage.token_caches.load_cache(TENANT, ALICE)


def test_token_cache_copied_to_another_users_row_fails_integrity(
    storage: TableStorage, azurite: Azurite, table_prefix: str
) -> None:
    storage.token_caches.save_cache(TENANT, ALICE, '{"rt": "alice"}')
    storage.token_caches.save_cache(TENANT, BOB, '{"rt": "bob"}')
    table = raw_table(azurite, table_prefix, TOKEN_CACHES)
    alice_row = table.get_entity(TENANT, ALICE)
    table.update_entity({"PartitionKey": TENANT, "RowKey": BOB, "c0": alice_row["c0"]}, UpdateMode.MERGE)
    with pytest.raises(TokenIntegrityError) as caught:
        storage.token_caches.load_cache(TENANT, BOB)
    assert caught.value.details["reason"] == "authentication_failed"
    assert "alice" not in caught.value.message


def mailbox_sync(**overrides: Any) -> MailboxSync:
    values: dict[str, Any] = dict(
        tenant_id=TENANT,
        mailbox="Interviews@contoso.example",
        subscription_id="sub-1",
        expires_at=T0 + timedelta(days=7),
        delta_link="https://graph.example/delta?$deltatoken=delta-secret-marker-77",
        delta_started_at=T0,
    )
    values.update(overrides)
    return MailboxSync(**values)


def test_mailbox_sync_claim_is_a_conditional_insert_and_its_delta_link_is_encrypted(
    storage: TableStorage, azurite: Azurite, table_prefix: str
) -> None:
    created = storage.subscriptions.create_mailbox_sync(mailbox_sync())
    with pytest.raises(ConcurrencyConflict):
        storage.subscriptions.create_mailbox_sync(mailbox_sync(mailbox="interviews@CONTOSO.example"))
    read = storage.subscriptions.get_mailbox_sync(TENANT, "interviews@contoso.example")
    assert read == created
    storage.subscriptions.update_mailbox_sync(dataclasses.replace(read, claimed_until=T0))
    with pytest.raises(ConcurrencyConflict):
        storage.subscriptions.update_mailbox_sync(dataclasses.replace(read, claimed_until=T0))
    raw = next(iter(raw_table(azurite, table_prefix, MAILBOX_SYNC).list_entities()))
    assert "delta-secret-marker-77" not in str(dict(raw))
    assert [s.mailbox for s in storage.subscriptions.list_mailbox_syncs(TENANT)] == ["Interviews@contoso.example"]


def test_dropped_notification_counters_add_up_across_concurrent_flushes(storage: TableStorage) -> None:
    assert storage.subscriptions.get_dropped(TENANT) == {}

    def flush() -> None:
        storage.subscriptions.add_dropped(TENANT, {"client_state_mismatch": 1, "malformed": 2})

    threads = [threading.Thread(target=flush) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    storage.subscriptions.add_dropped("unattributed", {"unknown_subscription": 5, "Not-A-Reason": 1})

    assert storage.subscriptions.get_dropped(TENANT) == {"client_state_mismatch": 4, "malformed": 8}
    assert storage.subscriptions.get_dropped("unattributed") == {"unknown_subscription": 5}
    assert storage.subscriptions.get_dropped(OTHER_TENANT) == {}


def test_delta_link_copied_to_another_tenant_fails_integrity(
    storage: TableStorage, azurite: Azurite, table_prefix: str
) -> None:
    storage.subscriptions.create_mailbox_sync(mailbox_sync())
    storage.subscriptions.create_mailbox_sync(mailbox_sync(tenant_id=OTHER_TENANT))
    table = raw_table(azurite, table_prefix, MAILBOX_SYNC)
    first = table.get_entity(TENANT, TableSubscriptionStore.mailbox_key("interviews@contoso.example"))
    table.update_entity(
        {"PartitionKey": OTHER_TENANT, "RowKey": first["RowKey"], "delta_link": first["delta_link"]}, UpdateMode.MERGE
    )
    with pytest.raises(TokenIntegrityError):
        storage.subscriptions.get_mailbox_sync(OTHER_TENANT, "interviews@contoso.example")


def test_ciphertext_under_an_unknown_key_version_fails_integrity(
    azurite: Azurite, storage: TableStorage, table_prefix: str
) -> None:
    storage.token_caches.save_cache(TENANT, ALICE, '{"rt": "x"}')
    other_keys = StaticKeySource({"k9": generate_key()}, current="k9")
    reader = TableStorage(azurite.connection_string, cipher=AesGcmCipher(other_keys), table_prefix=table_prefix)
    with pytest.raises(TokenIntegrityError, match="unknown key version") as caught:
        reader.token_caches.load_cache(TENANT, ALICE)
    assert caught.value.details["reason"] == "unknown_key_version"


def test_rotation_keeps_old_records_readable_and_reencrypts_them_on_write(
    storage: TableStorage, keys: StaticKeySource, clock: FakeClock, azurite: Azurite, table_prefix: str
) -> None:
    storage.token_caches.save_cache(TENANT, ALICE, '{"rt": "before"}')
    storage.subscriptions.create_mailbox_sync(mailbox_sync())
    caches = raw_table(azurite, table_prefix, TOKEN_CACHES)
    syncs = raw_table(azurite, table_prefix, MAILBOX_SYNC)
    assert caches.get_entity(TENANT, ALICE)["c0"].startswith("v1.k1.")

    keys.add("k2", generate_key())

    assert storage.token_caches.load_cache(TENANT, ALICE) == '{"rt": "before"}'
    assert caches.get_entity(TENANT, ALICE)["c0"].startswith("v1.k1.")  # reading does not write
    storage.token_caches.save_cache(TENANT, ALICE, '{"rt": "after"}')
    assert caches.get_entity(TENANT, ALICE)["c0"].startswith("v1.k2.")

    read = storage.subscriptions.get_mailbox_sync(TENANT, "interviews@contoso.example")
    storage.subscriptions.update_mailbox_sync(read)
    raw_sync = next(iter(syncs.list_entities()))
    assert raw_sync["delta_link"].startswith("v1.k2.")
    assert storage.subscriptions.get_mailbox_sync(TENANT, read.mailbox).delta_link == read.delta_link


# --- tables, errors, health --------------------------------------------------------------


def test_tables_are_created_on_first_use_not_at_construction(
    azurite: Azurite, keys: StaticKeySource, table_prefix: str
) -> None:
    service = TableServiceClient.from_connection_string(azurite.connection_string)

    def ours() -> list[str]:
        return sorted(t.name for t in service.list_tables() if t.name.startswith(table_prefix))

    storage = TableStorage(azurite.connection_string, cipher=AesGcmCipher(keys), table_prefix=table_prefix)
    assert ours() == []
    storage.tenants.list_tenants()
    assert ours() == [table_prefix + "tenants"]


def test_invalid_table_prefix_is_a_configuration_error(keys: StaticKeySource) -> None:
    for prefix in ("has-dash", "1digitfirst", "x" * 60):
        with pytest.raises(ConfigurationError, match="TABLE_PREFIX"):
            TableStorage("UseDevelopmentStorage=true", cipher=AesGcmCipher(keys), table_prefix=prefix)


def test_health_check_passes_against_azurite(storage: TableStorage) -> None:
    assert storage.check() is True


def test_unreachable_storage_is_upstream_unavailable_naming_the_endpoint(keys: StaticKeySource) -> None:
    port = free_port()  # nothing listens here
    conn = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    storage = TableStorage(conn, cipher=AesGcmCipher(keys), table_prefix="tunreachable", retry_total=0)
    with pytest.raises(UpstreamUnavailable, match=f"127.0.0.1:{port}.* is unreachable") as caught:
        storage.tenants.get_tenant(TENANT)
    assert "AccountKey" not in caught.value.message and "Eby8" not in caught.value.message
    with pytest.raises(UpstreamUnavailable, match="unreachable"):
        storage.check()


# --- clients of several tables at once -----------------------------------------------------


def _steps(client: TableClient) -> list[int]:
    """The pipeline a table client's requests run through, step by step (azure-core's linked policies)."""
    step: Any = client._client._client._pipeline._impl_policies[0]
    seen = []
    while step is not None:
        seen.append(id(step))
        step = getattr(step, "next", None)
    return seen


def test_a_table_used_for_the_first_time_leaves_requests_on_other_tables_alone(storage: TableStorage) -> None:
    # The service client's get_table_client re-links the service's own policy objects into each new
    # client's pipeline: a request under way on one table could meet a half-linked step when another table
    # was used for the first time (AttributeError in azure-core, a 500 for fifty concurrent bookings).
    storage.tenants.create_tenant(tenant())
    first = storage.table("tenants")
    before = _steps(first)
    storage.table("emailpacing")  # a client made, and its table created, while the first is in use
    storage.table("emailsdue")
    assert _steps(first) == before
    assert storage.tenants.get_tenant(TENANT).tenant_id == TENANT


def test_concurrent_requests_while_tables_are_used_for_the_first_time_all_succeed(storage: TableStorage) -> None:
    storage.tenants.create_tenant(tenant())
    failures: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                storage.tenants.get_tenant(TENANT)
            except BaseException as err:  # noqa: BLE001 (collected for the assertion)
                failures.append(err)
                return

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for name in ("bookings", "sessions", "users", "flows", "subscriptions", "emails", "emailtemplates"):
            storage.table(name)
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
    assert failures == []
