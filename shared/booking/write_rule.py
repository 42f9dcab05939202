"""Whose permission writes an event: the one rule, and the directory facts it reads.

The app's own permission (application ``Calendars.ReadWrite``) reaches every mailbox of the tenant, so it
writes only to the calendar of a person who is one of this interview's interviewers, whose mailbox is a
user's (mailboxSettings ``userPurpose`` "user"), and whom the recruiter's tenant holds (Graph finds the
address with that tenant's own app token). Every other calendar (the Interviews and Sync mailboxes, any
shared, room or equipment mailbox, anyone not in the interview) is written with the recruiter's delegated
token, so Exchange's own access rules decide. When the facts cannot be read, it is never the app.

Each worker remembers what Graph answered about a mailbox for ``WORKER_CACHE_TTL``, so a burst of bookings
with the same interviewers costs one ``$batch`` (20 addresses each) per worker, not one request per person.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum

from shared.errors import GraphUnavailable, InvalidRequest, UpstreamError
from shared.identity.tokens import with_app_token
from shared.models import MailboxPurpose, Tenant
from shared.ports import Clock, Dependencies
from shared.worker_cache import TtlCache

logger = logging.getLogger(__name__)

# Never an interviewer: a mailbox that is not a person's. Graph says so of these three by name.
NOT_A_PERSON = frozenset({MailboxPurpose.SHARED, MailboxPurpose.ROOM, MailboxPurpose.EQUIPMENT})
# Not remembered: no answer is not an answer.
UNSURE = frozenset({MailboxPurpose.UNKNOWN})
RETRY_AFTER_SECONDS = 5


class Writer(StrEnum):
    APP = "app"  # the app's own (application) permission
    RECRUITER = "recruiter"  # the signed-in recruiter's delegated token: Exchange decides


def writer_for(
    mailbox: str, *, interviewers: Sequence[str], purpose: MailboxPurpose | None, tenant: Tenant | None
) -> Writer:
    """THE write rule. ``interviewers``: everyone interviewing in this interview (required and optional);
    ``purpose``: what Graph, asked with the recruiter's tenant's app token, says ``mailbox`` is (None: not
    asked). The app writes only to a user mailbox of the tenant whose owner interviews in this interview,
    and never to the tenant's Interviews or Sync mailbox whatever Graph says it is."""
    address = mailbox.strip().lower()
    if not address or address not in {i.strip().lower() for i in interviewers}:
        return Writer.RECRUITER
    if tenant is not None and address in {m.lower() for m in (tenant.interviews_mailbox, tenant.sync_mailbox) if m}:
        return Writer.RECRUITER
    # Only "user" is a person's mailbox of this tenant: "linked" is a mailbox whose account lives in another
    # forest, "others" and anything newer are not documented as a person's, and a lookup that found nobody,
    # was refused or failed proves nothing.
    if purpose is not MailboxPurpose.USER:
        return Writer.RECRUITER
    return Writer.APP


# ---- the facts: what each mailbox is, remembered per worker -----------------------------------------
# One cache per clock: a worker's composition root has one clock, and a test's fresh root starts empty.
# Microsoft's documentation calls userPurpose read-only and is silent on how soon a mailbox converted
# between user and shared shows its new purpose; 20 s of memory adds nothing measurable to that.
_memories: weakref.WeakKeyDictionary[Clock, TtlCache[tuple[str, str], MailboxPurpose]] = weakref.WeakKeyDictionary()


def _memory(clock: Clock) -> TtlCache[tuple[str, str], MailboxPurpose]:
    cache = _memories.get(clock)
    if cache is None:
        cache = _memories.setdefault(clock, TtlCache(clock))
    return cache


def mailbox_purposes(
    deps: Dependencies, tenant_id: str, addresses: Sequence[str], *, known: Tenant | None = None
) -> dict[str, MailboxPurpose]:
    """What each address's mailbox is in the tenant, keyed by the lower-cased address: from this worker's
    memory, the rest in one Graph ``$batch`` per 20 addresses with the tenant's app token. A Graph failure
    makes the addresses it left unanswered UNKNOWN (never raises for it). Raises AdminConsentRequired."""
    memory = _memory(deps.clock)
    wanted = list(dict.fromkeys(a.strip().lower() for a in addresses if a.strip()))
    found: dict[str, MailboxPurpose] = {}
    missing: list[str] = []
    for address in wanted:
        remembered = memory.get((tenant_id, address))
        if remembered is None:
            missing.append(address)
        else:
            found[address] = remembered
    if not missing:
        return found
    try:
        answered = with_app_token(deps, tenant_id, lambda t: deps.graph.mailbox_purposes(t, missing), known=known)
    except UpstreamError as err:
        logger.warning("Reading %d mailbox purposes failed (%s): treated as unknown", len(missing), err.code)
        answered = {}
    for address in missing:
        purpose = answered.get(address, MailboxPurpose.UNKNOWN)
        found[address] = purpose
        if purpose not in UNSURE:
            memory.put((tenant_id, address), purpose)
    return found


def check_interviewers(purposes: Mapping[str, MailboxPurpose], fields: Mapping[str, str]) -> None:
    """Refuse what cannot be an interviewer. ``fields``: each interviewer's address and request field.
    Raises InvalidRequest naming the field of a shared, room or equipment mailbox, and GraphUnavailable
    when Graph could not say what someone's mailbox is (a shared mailbox is never let in unseen)."""
    unsure: list[str] = []
    for address, field in fields.items():
        purpose = purposes.get(address.lower(), MailboxPurpose.UNKNOWN)
        if purpose in NOT_A_PERSON:
            raise InvalidRequest(
                f"{address} is a {purpose.value} mailbox, not a person: it cannot be an interviewer. Book into "
                'the Interviews calendar with `calendar: "interviews"` instead.',
                field=field,
            )
        if purpose in UNSURE:
            unsure.append(address)
    if unsure:
        raise _unavailable("the interviewers' mailboxes")


def decide_writer(
    deps: Dependencies,
    tenant_id: str,
    tenant: Tenant | None,
    mailbox: str,
    fields: Mapping[str, str],
    *,
    check: bool = True,
) -> Writer:
    """Whose permission writes ``mailbox``'s event in an interview whose interviewers are ``fields``
    (address -> request field, required and optional), checked first unless ``check`` is False (a
    cancellation). When Graph could not say what the mailbox is and only that keeps the app out, raises
    GraphUnavailable rather than guess either way. Raises InvalidRequest, GraphUnavailable, AdminConsentRequired."""
    purposes = mailbox_purposes(deps, tenant_id, list(fields), known=tenant)
    if check:
        check_interviewers(purposes, fields)
    purpose = purposes.get(mailbox.strip().lower())
    writer = writer_for(mailbox, interviewers=list(fields), purpose=purpose, tenant=tenant)
    if (
        purpose in UNSURE
        and writer_for(mailbox, interviewers=list(fields), purpose=MailboxPurpose.USER, tenant=tenant) is Writer.APP
    ):
        raise _unavailable("the calendar's mailbox")
    return writer


def _unavailable(what: str) -> GraphUnavailable:
    return GraphUnavailable(
        f"Microsoft Graph could not be read to check {what}; nothing was written. Retry in a few seconds.",
        retry_after=RETRY_AFTER_SECONDS,
    )


def check_tenant_mailbox(
    deps: Dependencies,
    tenant_id: str,
    tenant: Tenant | None,
    address: str,
    field: str,
    *,
    own_domains: Collection[str],
) -> None:
    """A mailbox a setting names must be the tenant's: Graph, asked with the tenant's app token, finds it,
    or (a mailbox not created yet) its domain is one of ``own_domains``, domains the tenant is known to
    hold (a member's user principal name ends in a verified domain of their tenant, and a domain is
    verified in one tenant only). Raises InvalidRequest naming the field, or GraphUnavailable when Graph
    could not be asked."""
    purpose = mailbox_purposes(deps, tenant_id, [address], known=tenant)[address.lower()]
    if purpose in UNSURE:
        raise _unavailable("the mailbox")
    domain = address.rpartition("@")[2].lower()
    if purpose is MailboxPurpose.NOT_IN_TENANT and domain not in {d.lower() for d in own_domains}:
        raise InvalidRequest(f"{address} is not a mailbox of your Office 365 tenant.", field=field)
