"""Entry point: registers the blueprints. Nothing else happens at import time."""

import azure.functions as func

from functions import (
    admin_consent,
    availability,
    booking,
    directory,
    graph_webhook,
    health,
    maintenance,
    notification_worker,
    oauth_callback,
    subscription_renewal,
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
    graph_webhook.bp,
    notification_worker.bp,
    subscription_renewal.bp,
    booking.bp,
)
for blueprint in blueprints:
    app.register_functions(blueprint)
