"""Entry point: registers the blueprints. Nothing else happens at import time."""

import azure.functions as func

from functions import (
    admin_consent,
    availability,
    booking,
    directory,
    health,
    maintenance,
    oauth_callback,
    tenants,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

blueprints = (
    health.bp,
    admin_consent.bp,
    oauth_callback.bp,
    tenants.bp,
    directory.bp,
    maintenance.bp,
    availability.bp,
    booking.bp,
)
for blueprint in blueprints:
    app.register_functions(blueprint)
