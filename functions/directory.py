"""Directory lookups under the two-token rule.

Every lookup is made within the caller's own tenant, whatever ids the request names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions._auth import requires_session
from functions._http import http_endpoint, json_response
from shared.bootstrap import get_container

if TYPE_CHECKING:
    from shared.identity.guard import RequestContext

bp = func.Blueprint()


@bp.function_name("directory_user")
@bp.route(route="directory/users/{user}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@http_endpoint
@requires_session(calendar=True)
def directory_user(req: func.HttpRequest, *, ctx: RequestContext) -> func.HttpResponse:
    from functions._views import directory_user_json
    from shared.identity.directory import get_directory_user

    return json_response(
        directory_user_json(get_directory_user(get_container(), ctx, req.route_params.get("user", "")))
    )
