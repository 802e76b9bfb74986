"""Sends agent sessions to canaryd with the official OpenTelemetry Python SDK
(OTLP/HTTP protobuf exporter), shaped as GenAI instrumentations emit them:
`invoke_agent` spans around `chat` spans, `execute_tool` spans.

- conv-pingpong: agents "planner" and "clarifier" ask each other for
  clarification, 8 turns, no tool call: a loop.
- conv-status: `check_status` executed 16 times without recorded arguments
  (the SDK default): a loop on the tool name alone.
- conv-research: `search` executed 30 times with different recorded
  arguments, and `open_page` 10 times without arguments, by one agent
  doing real work: not a loop.

usage: otel_agents.py ENDPOINT
"""
import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

endpoint = sys.argv[1]
results = []


class Checked(OTLPSpanExporter):
    def export(self, spans):
        r = super().export(spans)
        results.append(r)
        return r


provider = TracerProvider(resource=Resource.create({"service.name": "agent-app"}))
provider.add_span_processor(SimpleSpanProcessor(Checked(endpoint=endpoint)))
tracer = provider.get_tracer("canaryd-agents-test")


def chat(conv, text, tool_calls=()):
    with tracer.start_as_current_span("chat gpt-4o") as s:
        s.set_attribute("gen_ai.operation.name", "chat")
        s.set_attribute("gen_ai.conversation.id", conv)
        s.set_attribute("gen_ai.request.model", "gpt-4o")
        s.set_attribute("gen_ai.usage.input_tokens", 120)
        s.set_attribute("gen_ai.usage.output_tokens", 30)
        parts = [{"type": "text", "content": text}]
        parts += [{"type": "tool_call", "id": i, "name": n, "arguments": a} for (i, n, a) in tool_calls]
        s.set_attribute("gen_ai.output.messages", json.dumps([{"role": "assistant", "parts": parts}]))


def execute_tool(conv, name, call_id, arguments=None):
    with tracer.start_as_current_span(f"execute_tool {name}") as s:
        s.set_attribute("gen_ai.operation.name", "execute_tool")
        s.set_attribute("gen_ai.conversation.id", conv)
        s.set_attribute("gen_ai.tool.name", name)
        s.set_attribute("gen_ai.tool.call.id", call_id)
        if arguments is not None:
            s.set_attribute("gen_ai.tool.call.arguments", json.dumps(arguments))


def invoke_agent(conv, agent):
    s = tracer.start_span(f"invoke_agent {agent}")
    s.set_attribute("gen_ai.operation.name", "invoke_agent")
    s.set_attribute("gen_ai.agent.name", agent)
    s.set_attribute("gen_ai.conversation.id", conv)
    return s


from opentelemetry import trace

for i in range(8):
    agent = ["planner", "clarifier"][i % 2]
    span = invoke_agent("conv-pingpong", agent)
    with trace.use_span(span, end_on_exit=True):
        chat("conv-pingpong", "Could you clarify what you mean by that?")

span = invoke_agent("conv-status", "deployer")
with trace.use_span(span, end_on_exit=True):
    for i in range(16):
        chat("conv-status", "Checking again.", [(f"st{i}", "check_status", None)])
        execute_tool("conv-status", "check_status", f"st{i}")

span = invoke_agent("conv-research", "researcher")
with trace.use_span(span, end_on_exit=True):
    for i in range(30):
        args = {"q": f"topic {i}"}
        chat("conv-research", "Searching.", [(f"rs{i}", "search", args)])
        execute_tool("conv-research", "search", f"rs{i}", args)
    for i in range(10):
        execute_tool("conv-research", "open_page", f"op{i}")

provider.shutdown()
bad = [r for r in results if r.name != "SUCCESS"]
print(f"{len(results)} exports, {len(bad)} failed")
sys.exit(1 if bad or not results else 0)
