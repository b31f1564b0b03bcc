"""`caspo-lite serve`: CaT (and every other search strategy) behind an OpenAI-compatible API.

Why: users plug local models into the apps they already use through OpenAI-compatible
endpoints (llama.cpp's server, Ollama, vLLM). This package puts the confidence-aware search
behind the same three routes (``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``)
so any OpenAI client gets a searched answer, plus a ``caspo`` object with the confidence,
tokens, tokens saved against self-consistency, prunes and (on request) the tree.

Modules, one job each:
- `schemas`: the request bodies (pydantic), the ``caspo`` extension fields and the server limits;
- `jobs`: one request -> prompt + strategy -> `run_search` on one engine (no HTTP here);
- `report`: the ``caspo`` extension object of a finished search;
- `pool`: worker threads, one engine (one llama.cpp context) each, behind a bounded queue;
- `app`: the FastAPI routes, OpenAI-style errors, SSE streaming, and `serve()` (uvicorn).
"""
