"""Reads scoped to the caller's tenant: a directory user through Graph."""

from __future__ import annotations

import re

from shared.errors import InvalidRequest
from shared.identity.guard import RequestContext
from shared.identity.tokens import with_app_token
from shared.models import DirectoryUser
from shared.ports import Dependencies

_USER_REF = re.compile(r"[A-Za-z0-9._%+'@-]{1,256}")


def get_directory_user(deps: Dependencies, ctx: RequestContext, user: str) -> DirectoryUser:
    """Raises NotFound when the user is not in the caller's tenant."""
    if not _USER_REF.fullmatch(user):
        raise InvalidRequest("Name the user by object id or user principal name.", parameter="user")
    return with_app_token(deps, ctx.tenant_id, lambda token: deps.graph.get_user(token, user), known=ctx.tenant)
