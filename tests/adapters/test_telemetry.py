"""OpenTelemetry: spans follow an invocation into Graph (httpx) and storage (the Azure SDK), and no code,
token, state or clientState reaches an exported span."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.adapters.telemetry import REDACTED, _entra_client_id, redact_text, redacted_attributes

SECRET = "S3CR3T-VALUE"

# Run in a fresh interpreter: the Azure SDK's tracing goes through the process-wide tracer provider.
SCRIPT = r"""
import json, httpx
from azure.core.settings import settings
from azure.core.pipeline.transport import HttpTransport
from azure.data.tables import TableServiceClient
from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shared.adapters.telemetry import RedactingSpanProcessor

SECRET = "S3CR3T-VALUE"
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(RedactingSpanProcessor())
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
settings.tracing_implementation = "opentelemetry"
HTTPXClientInstrumentor().instrument()

class Answer(HttpTransport):
    def __enter__(self): return self
    def __exit__(self, *a): pass
    def open(self): pass
    def close(self): pass
    def send(self, request, **kwargs):
        from azure.core.pipeline.transport import HttpResponse
        class R(HttpResponse):
            def body(self): return b'{"value": []}'
        r = R(request, None); r.status_code = 200; r.headers = {"content-type": "application/json"}
        r.reason = "OK"; r.content_type = "application/json"
        return r

graph = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
# instrument() wraps httpx's own transports (what GraphClient uses); a mock transport is wrapped per client.
HTTPXClientInstrumentor.instrument_client(graph)
class Identity:
    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        return AccessToken("token", 4102444800)

tables = TableServiceClient(endpoint="https://st.table.core.windows.net", credential=Identity(), transport=Answer())
with trace.get_tracer("host").start_as_current_span("invocation") as invocation:
    graph.get(f"https://graph.microsoft.com/v1.0/users/a/calendarView/delta?$deltatoken={SECRET}&$select=id")
    graph.post(f"https://app.example/api/webhooks/graph?validationToken={SECRET}")
    graph.get(f"https://user:{SECRET}@graph.microsoft.com/v1.0/me?code={SECRET}&state={SECRET}")
    list(tables.list_tables())
spans = [
    {"name": s.name, "trace": s.context.trace_id, "parent": s.parent.span_id if s.parent else None,
     "attributes": dict(s.attributes), "invocation": invocation.get_span_context().span_id}
    for s in exporter.get_finished_spans()
]
print(json.dumps(spans))
"""


def _spans() -> list[dict]:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_spans_follow_the_invocation_into_graph_and_storage_without_secrets() -> None:
    spans = _spans()
    invocation = next(s for s in spans if s["name"] == "invocation")
    children = [s for s in spans if s["name"] != "invocation"]
    assert {s["trace"] for s in spans} == {invocation["trace"]}  # one trace
    graph = [s for s in children if "graph.microsoft.com" in json.dumps(s["attributes"])]
    storage = [s for s in children if "table.core.windows.net" in json.dumps(s["attributes"])]
    assert len(graph) == 2 and storage
    assert all(s["parent"] == s["invocation"] for s in graph)
    exported = json.dumps(spans)
    assert SECRET not in exported
    assert "%24deltatoken=REDACTED" in exported or "$deltatoken=REDACTED" in exported
    assert "$select=id" in exported  # harmless parameters stay readable


def test_redaction_of_urls_and_credential_attributes() -> None:
    assert redact_text(f"https://h/api/consent/callback?admin_consent=True&state={SECRET}") == (
        f"https://h/api/consent/callback?admin_consent=True&state={REDACTED}"
    )
    assert SECRET not in redact_text(f"https://h/x?clientState={SECRET}&code={SECRET}")
    assert redact_text("GET /api/me") == "GET /api/me"
    changed = redacted_attributes(
        {"http.request.header.authorization": ("Bearer x",), "http.request.header.cookie": "a=b", "ok": 1}
    )
    assert changed == {"http.request.header.authorization": REDACTED, "http.request.header.cookie": REDACTED}


def test_ingestion_identity_from_the_authentication_string() -> None:
    assert _entra_client_id("ClientId=abc;Authorization=AAD") == "abc"
    assert _entra_client_id("Authorization=AAD") == ""
    assert _entra_client_id(None) is None
    assert _entra_client_id("Authorization=Other") is None
