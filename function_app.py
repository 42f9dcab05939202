"""Entry point: registers the blueprints, sets the Azure SDKs' log level and the garbage collector's pace.
Nothing else happens at import time."""

import logging

import azure.functions as func

from functions import (
    admin_consent,
    availability,
    booking,
    busy_cache,
    directory,
    email,
    graph_webhook,
    health,
    maintenance,
    notification_worker,
    oauth_callback,
    subscription_renewal,
    tenants,
)
from functions._routes import routes
from shared import heap, threads

# The Azure SDKs (their HTTP logging policy dumps every storage request's headers at INFO) and httpx (every
# URL it calls) log at WARNING, deployed as on the local host. host.json cannot do this: the Functions host
# files every log of a Python invocation under "Function.<name>.User", whatever the Python logger's name
# (azure-functions-host GrpcWorkerChannel.Log; Microsoft's docs are silent on it), so only the Python levels
# tell the SDKs' lines from the app's own.
QUIET_LOGGERS = ("azure", "httpx", "httpcore")
for _name in QUIET_LOGGERS:
    logging.getLogger(_name).setLevel(logging.WARNING)

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
    busy_cache.bp,
    email.bp,
)
for blueprint in blueprints:
    app.register_functions(blueprint)
routes.serve(blueprints)  # the catch-all answers 405 for a known path from this table

threads.tune()  # the GIL changes hands every millisecond (shared/threads.py)
heap.tune()  # last: what the import built is kept for the worker's life (shared/heap.py)
