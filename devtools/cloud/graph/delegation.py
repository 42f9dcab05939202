"""Mailbox delegation: who may open another user's mailbox with a delegated token.

Two relations open a mailbox to a delegated caller holding ``Calendars.Read.Shared`` or
``Calendars.ReadWrite.Shared`` (v1.0 concepts/outlook-get-shared-events-calendars.md: "allow you to
read or write events in a shared or delegated calendar"):

- a calendar shared with the caller (``User.shares_details_with``, seeded from ``shares_details_with``);
- Exchange's Full Access mailbox permission (``User.full_access``), granted to users or to mail-enabled
  security groups. Granted to a group, it reaches the group's members at the time of the request, so
  adding or removing a member takes effect on the next request. The shared Interviews and Sync mailboxes
  grant it to the tenant's "Recruiting Team" group (fixtures/directory.json).

A caller without either gets 403 ``ErrorAccessDenied`` "Access is denied. Check credentials and try
again." (``pipeline.access_denied``). The Graph reference does not document the error of a delegated
request to a mailbox the user cannot open; this is the code and text Graph is reported to answer.
Application permissions are not affected by delegation: they reach every mailbox of the tenant unless an
application access policy says otherwise.
"""

from __future__ import annotations

from devtools.cloud.state import Group, User, World


def groups_of(world: World, user_id: str) -> list[Group]:
    """The groups a user is a direct member of, ordered by display name."""
    with world.lock:
        found = [g for g in world.groups.values() if user_id in g.members]
    return sorted(found, key=lambda g: (g.display_name.lower(), g.id))


def holds(world: World, mailbox: User, holders: set[str], user_id: str) -> bool:
    """Whether ``user_id`` is among a mailbox permission's ``holders`` (users, or groups of the mailbox's
    tenant), directly or through a group."""
    with world.lock:
        if user_id in holders:
            return True
        for holder in holders:
            group = world.groups.get(holder)
            if group is not None and group.tenant_id == mailbox.tenant_id and user_id in group.members:
                return True
    return False


def has_full_access(world: World, mailbox: User, user_id: str) -> bool:
    """Whether ``user_id`` holds Full Access on ``mailbox``, directly or through a group."""
    return holds(world, mailbox, mailbox.full_access, user_id)


def may_open(world: World, mailbox: User, user_id: str | None) -> bool:
    """Whether a delegated caller may read (and with ReadWrite.Shared, write) ``mailbox``'s calendar."""
    if user_id is None:
        return False
    if user_id == mailbox.id:
        return True
    with world.lock:
        shared = user_id in mailbox.shares_details_with
    return shared or has_full_access(world, mailbox, user_id)


def full_access_mailboxes(world: World, user_id: str) -> list[User]:
    """The other mailboxes of the user's tenant that the user holds Full Access on, ordered by name."""
    with world.lock:
        user = world.users.get(user_id)
        if user is None:
            return []
        candidates = [m for m in world.users.values() if m.tenant_id == user.tenant_id and m.id != user_id]
    found = [m for m in candidates if has_full_access(world, m, user_id)]
    return sorted(found, key=lambda m: (m.display_name.lower(), m.id))


def set_group_member(world: World, group: Group, user: User, member: bool = True) -> None:
    """Add a user to a group or remove them (same tenant only)."""
    if user.tenant_id != group.tenant_id:
        raise ValueError("a group's members belong to its tenant")
    with world.lock:
        if member:
            group.members.add(user.id)
        else:
            group.members.discard(user.id)
