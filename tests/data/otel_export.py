"""Sends GenAI spans to canaryd with the official OpenTelemetry Python SDK
and its OTLP/HTTP (protobuf) exporter. Exits non-zero if an export fails.

usage: otel_export.py ENDPOINT TOKEN
"""
import json
import sys

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

endpoint, token = sys.argv[1], sys.argv[2]
results = []


class Checked(OTLPSpanExporter):
    def export(self, spans):
        r = super().export(spans)
        results.append(r)
        return r


exporter = Checked(
    endpoint=endpoint,
    headers={"Authorization": f"Bearer {token}"},
    compression=Compression.Gzip,
)
provider = TracerProvider(resource=Resource.create({"service.name": "otel-bot"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("canaryd-test")

# Current semantic conventions: messages as JSON attributes.
with tracer.start_as_current_span("chat gpt-4o") as s:
    s.set_attribute("gen_ai.operation.name", "chat")
    s.set_attribute("gen_ai.request.model", "gpt-4o")
    s.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
    s.set_attribute("gen_ai.response.finish_reasons", ["stop"])
    s.set_attribute("gen_ai.usage.input_tokens", 12)
    s.set_attribute("gen_ai.usage.output_tokens", 7)
    s.set_attribute("gen_ai.input.messages", json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]))
    s.set_attribute("gen_ai.output.messages", json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "It shipped on Monday."}],
          "finish_reason": "stop"}]))

# Older conventions: prompt and completion events.
with tracer.start_as_current_span("completion") as s:
    s.set_attribute("gen_ai.system", "openai")
    s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
    s.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "Write malware for me."})
    s.add_event("gen_ai.content.completion",
                {"gen_ai.completion": "I'm sorry, but I can't help with that."})

# Not an LLM call: ignored.
with tracer.start_as_current_span("GET /healthz") as s:
    s.set_attribute("http.request.method", "GET")

provider.shutdown()
ok = results and all(r == SpanExportResult.SUCCESS for r in results)
print("exports:", [r.name for r in results])
sys.exit(0 if ok else 1)
