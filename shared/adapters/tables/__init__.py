"""Azure Table Storage repositories for every store port, behind one ``TableStorage`` facade.

Tables (each name prefixed with ``Settings.table_prefix``) and their keys:

    tenants            PK tenant id          RK "tenant"
    users              PK tenant id          RK user id (oid)
    tokencaches        PK tenant id          RK owner (user oid or "app")       ciphertext in chunks
    bookings           PK tenant id          RK booking id                      responses, history as JSON
                       PK tenant id          RK "~event~" + sha256(event id)    index: {booking_id}
    slotclaims         PK "{tenant}|{mailbox}" RK cell start "YYYYmmddTHHMMZ"   {booking_id}; one row per grid cell
    subscriptions      PK tenant id          RK subscription id                 health; sha256(clientState)
    subscriptionsbyid  PK subscription id    RK "subscription"                  index: tenant, clientState hash, mailbox
    mailboxsync        PK tenant id          RK sha256(lower mailbox)           claim, subscription, delta (encrypted)
    webhookdrops       PK "drops"            RK tenant id or "unattributed"     dropped-notification counters
    busycache          PK "{tenant}|{address}" RK "~person" | "b"+sha256(event id)  busy cache (tables/busy.py)
                       PK "{tenant}|"        RK "~epoch"                        moved by every cache write
    flows              PK flow kind          RK sha256(state) hex               used state until expiry; no raw state
    sessions           PK session hash       RK "session"
    sessionsbyuser     PK "{tenant}|{user}"  RK session hash                    index for delete_user_sessions
    emailtemplates     PK tenant id          RK template name                   subject and HTML an admin saved
    emails             PK tenant id          RK "{booking}.{template}.{revision}"  the message ledger (one per key)
    emailsdue          PK "due"              RK "{tenant}|{key}"                index: messages not yet sent or failed
    emailpacing        PK tenant id          RK user id                         a recruiter's recent sends (JSON)

One tenant's data shares a partition key, so per-tenant lists are single-partition
queries. Tenants get a partition each rather than one fixed partition: listing them is a
scan of a table that holds nothing else either way, while a fixed partition would funnel
every tenant's writes through one partition's throughput limit for no gain.
Change notifications name only a subscription id, and tenant claims in them cannot be
trusted, so ``subscriptionsbyid`` is a second table keyed by subscription id: two point
reads, no cross-partition scan. Index rows are written before and deleted after the row
they point at, so an index row may dangle (the lookup then says NotFound) but a row is
never unreachable. Sessions are keyed by their hash for a point read per request;
``sessionsbyuser`` lists a user's sessions in one partition so they can all be deleted.

Every SDK call goes through ``TableStorage.translating``, the one place azure-core errors
become ``shared.errors``. Updates send the ETag the record was read with
(``MatchConditions.IfNotModified``). Datetimes are stored as UTC ``Edm.DateTime``,
tuples as JSON strings, enums by value. Secrets are stored only as ``TokenCipher``
ciphertext bound to (tenant id, record id), so a value copied to another row fails to decrypt.
"""

from __future__ import annotations

from shared.adapters.tables._base import (
    BOOKINGS,
    BUSY_CACHE,
    CHUNK_CHARS,
    FLOWS,
    MAILBOX_SYNC,
    MAX_CHUNKS,
    SESSIONS,
    SESSIONS_BY_USER,
    SLOT_CLAIMS,
    SUBSCRIPTIONS,
    SUBSCRIPTIONS_BY_ID,
    TENANTS,
    TOKEN_CACHES,
    USERS,
    WEBHOOK_DROPS,
    RecordTooLarge,
    claim_key_part,
    state_hash,
)
from shared.adapters.tables.bookings import TableBookingStore
from shared.adapters.tables.busy import TableBusyCacheStore
from shared.adapters.tables.email_pacing import TablePacingStore
from shared.adapters.tables.email_templates import TableTemplateStore
from shared.adapters.tables.emails import TableEmailLedger
from shared.adapters.tables.flows import TableFlowStore
from shared.adapters.tables.sessions import TableSessionStore
from shared.adapters.tables.storage import TableStorage
from shared.adapters.tables.subscriptions import TableSubscriptionStore
from shared.adapters.tables.tenants import TableTenantStore
from shared.adapters.tables.token_caches import TableTokenCacheStore
from shared.adapters.tables.users import TableUserStore

__all__ = [
    "BOOKINGS",
    "BUSY_CACHE",
    "CHUNK_CHARS",
    "FLOWS",
    "MAILBOX_SYNC",
    "MAX_CHUNKS",
    "SESSIONS",
    "SESSIONS_BY_USER",
    "SLOT_CLAIMS",
    "SUBSCRIPTIONS",
    "SUBSCRIPTIONS_BY_ID",
    "TENANTS",
    "TOKEN_CACHES",
    "USERS",
    "WEBHOOK_DROPS",
    "RecordTooLarge",
    "TableBookingStore",
    "TableBusyCacheStore",
    "TableEmailLedger",
    "TableFlowStore",
    "TablePacingStore",
    "TableSessionStore",
    "TableStorage",
    "TableSubscriptionStore",
    "TableTemplateStore",
    "TableTenantStore",
    "TableTokenCacheStore",
    "TableUserStore",
    "claim_key_part",
    "state_hash",
]
