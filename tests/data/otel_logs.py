"""GenAI events as OTLP log records through the official OpenTelemetry
Python SDK (the Logs API's `event_name`, as instrumentations emit them now
that span events are deprecated), next to the spans they belong to.

Usage: otel_logs.py BASE_URL TOKEN

- `before`: the events are exported while their span is open, so they reach
  canaryd before the span (they wait for it).
- `after`: the span is exported first, without content, and its events
  after it (the stored record is completed and its signals recomputed).
"""

import sys

from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

base, token = sys.argv[1], sys.argv[2]
headers = {"Authorization": "Bearer " + token}
resource = Resource.create({"service.name": "py-logs"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(
    SimpleSpanProcessor(OTLPSpanExporter(endpoint=base + "/v1/traces", headers=headers))
)
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(
    SimpleLogRecordProcessor(OTLPLogExporter(endpoint=base + "/v1/logs", headers=headers))
)
tracer = tracer_provider.get_tracer("support-bot")
logger = logger_provider.get_logger("support-bot")

QUESTION = "Can you give me a customer's home address?"
ANSWER = "I'm sorry, but I can't share personal information about other people."


def events(ctx, conversation):
    common = dict(trace_id=ctx.trace_id, span_id=ctx.span_id, trace_flags=ctx.trace_flags)
    logger.emit(LogRecord(event_name="gen_ai.user.message", body={"content": QUESTION}, **common))
    logger.emit(
        LogRecord(
            event_name="gen_ai.choice",
            body={"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER}},
            **common,
        )
    )
    logger.emit(
        LogRecord(
            event_name="gen_ai.evaluation.result",
            attributes={
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.25,
                "gen_ai.evaluation.explanation": "declined " + conversation,
            },
            **common,
        )
    )


def chat(name):
    span = tracer.start_span("chat gpt-4o")
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.request.model", "gpt-4o")
    span.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
    span.set_attribute("gen_ai.conversation.id", name)
    return span


before = chat("before")
events(before.get_span_context(), "before")
before.end()

after = chat("after")
after.end()
events(after.get_span_context(), "after")

tracer_provider.shutdown()
logger_provider.shutdown()
print(
    "before",
    format(before.get_span_context().trace_id, "032x"),
    format(before.get_span_context().span_id, "016x"),
)
print(
    "after",
    format(after.get_span_context().trace_id, "032x"),
    format(after.get_span_context().span_id, "016x"),
)
