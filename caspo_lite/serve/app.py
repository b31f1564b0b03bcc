"""The FastAPI app: OpenAI-compatible routes over a `WorkerPool` (imported once fastapi is known present).

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (both with
``"stream": true`` as server-sent events), ``GET /health`` (worker and queue counts).
Every refusal is an OpenAI-style error body (`caspo_lite.serve.errors`); a refused or failed
request never takes the server down.

Streaming: the answer is only known when the search has chosen it, so a stream sends the role
at once, then (unless ``caspo.progress`` is false) one progress chunk per branch event — started,
step done, pruned, finished — with an empty delta and a ``caspo`` object, then the chosen path's
text, then a last chunk with ``finish_reason`` and the full ``caspo`` object, then ``[DONE]``.
A streaming client that disconnects cancels its search between two tokens.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from caspo_lite.calibration import AnswerCalibration
from caspo_lite.search.events import BranchFinished, BranchPruned, BranchStarted, SearchEvent, StepDone
from caspo_lite.serve.errors import ApiError, error_body
from caspo_lite.serve.jobs import SearchJob, ServeDefaults, chat_job, completion_job
from caspo_lite.serve.pool import Ticket, WorkerPool
from caspo_lite.serve.report import answer_text, caspo_object
from caspo_lite.serve.schemas import ChatRequest, CompletionRequest, ServeLimits
from caspo_lite.solve import tree_nodes

log = logging.getLogger(__name__)
T = TypeVar("T", ChatRequest, CompletionRequest)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_DONE = object()


def progress_dict(ev: SearchEvent) -> dict[str, Any] | None:
    """A branch event as a streaming progress record (None for events not streamed: tokens)."""
    if isinstance(ev, BranchStarted):
        return {"event": "started", "branch": ev.branch, "parent": ev.parent, "reason": ev.reason}
    if isinstance(ev, StepDone):
        return {
            "event": "step",
            "branch": ev.branch,
            "step": ev.step_index,
            "text": ev.text,
            "step_confidence": round(ev.step_confidence, 4),
            "path_confidence": round(ev.path_confidence, 4),
        }
    if isinstance(ev, BranchPruned):
        return {
            "event": "pruned",
            "branch": ev.branch,
            "path_confidence": round(ev.path_confidence, 4),
            "threshold": round(ev.threshold, 4),
            "reason": ev.reason,
        }
    if isinstance(ev, BranchFinished):
        return {
            "event": "finished",
            "branch": ev.branch,
            "answer": ev.answer,
            "path_confidence": round(ev.path_confidence, 4),
            "n_tokens": ev.n_tokens,
            "stop_reason": ev.stop_reason,
        }
    return None


def _validation_error(errors: list[Any]) -> ApiError:
    """A pydantic error list as one 400 naming the first bad field."""
    first = (errors or [{}])[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if first.get("type") == "json_invalid":
        return ApiError(400, f"malformed JSON body: {first.get('msg', 'could not parse')}")
    return ApiError(400, f"{loc or 'body'}: {first.get('msg', 'invalid value')}", loc or None)


async def parse_body(request: Request, cls: type[T]) -> T:
    """The JSON body as ``cls``, whatever the Content-Type (curl -d sends a form type)."""
    from pydantic import ValidationError

    raw = await request.body()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc.errors()) from None


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


class _Responder:
    """Builds the response objects of one route kind (chat or completion)."""

    def __init__(self, kind: str, model_id: str) -> None:
        self.chat = kind == "chat"
        self.model_id = model_id
        self.id = ("chatcmpl-" if self.chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def _head(self, chunk: bool) -> dict[str, Any]:
        obj = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model_id}

    def full(self, content: str, finish: str, usage: dict[str, int], caspo: dict[str, Any]) -> dict[str, Any]:
        if self.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        else:
            choice = {"index": 0, "text": content, "logprobs": None, "finish_reason": finish}
        return {**self._head(False), "choices": [choice], "usage": usage, "caspo": caspo}

    def chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        if self.chat:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta.get("content", ""), "logprobs": None, "finish_reason": finish}
        return {**self._head(True), "choices": [choice], **extra}


def create_app(
    pool: WorkerPool,
    model_id: str,
    defaults: ServeDefaults | None = None,
    limits: ServeLimits | None = None,
    api_key: str | None = None,
    calibration: Callable[[str], AnswerCalibration | None] | None = None,
) -> Any:
    """The ASGI app serving ``pool``'s engines as model ``model_id``.

    ``calibration`` looks up the served model's answer calibration for a strategy (None: none);
    each request's confidence is mapped with the one for the strategy it ran.
    """
    defaults = defaults or ServeDefaults()
    limits = limits or ServeLimits()
    app = FastAPI(
        title="caspo-lite", description="CaT confidence-aware search behind an OpenAI-compatible API"
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = _validation_error(list(exc.errors()))
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse(error_body(f"internal error: {exc}", "server_error"), status_code=500)

    async def authorized(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise ApiError(
                401, "invalid or missing API key (send Authorization: Bearer KEY)", code="invalid_api_key"
            )

    def check_model(name: str) -> None:
        if name != model_id:
            raise ApiError(
                404,
                f"model {name!r} is not served here; this server serves {model_id!r}",
                "model",
                "model_not_found",
            )

    def model_card() -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 0, "owned_by": "caspo-lite"}

    @app.get("/v1/models", dependencies=[Depends(authorized)])
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name}", dependencies=[Depends(authorized)])
    async def get_model(name: str) -> dict[str, Any]:
        check_model(name)
        return model_card()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_id, **pool.status()}

    async def respond(
        job: SearchJob, responder: _Responder, stream: bool, include_usage: bool, progress: bool
    ) -> Any:
        def finish(ticket: Ticket) -> tuple[str, str, dict[str, int], dict[str, Any]]:
            result = ticket.done.result()
            content, reason = answer_text(result)
            usage = {
                "prompt_tokens": job.prompt_tokens,
                "completion_tokens": result.n_tokens,
                "total_tokens": job.prompt_tokens + result.n_tokens,
            }
            tree = tree_nodes(result.events) if job.want_tree else None
            cal = calibration(result.strategy) if calibration is not None else None
            return content, reason, usage, caspo_object(result, job.k, tree, cal)

        if not stream:
            ticket = pool.submit(job)
            try:
                await asyncio.wrap_future(ticket.done)
            except asyncio.CancelledError:
                job.cancel.set()
                raise
            return responder.full(*finish(ticket))

        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()

        def push(ev: SearchEvent) -> None:  # on the worker thread
            record = progress_dict(ev)
            if record is not None:
                loop.call_soon_threadsafe(events.put_nowait, record)

        if progress:
            job.on_event = push
        ticket = pool.submit(job)
        ticket.done.add_done_callback(lambda _f: loop.call_soon_threadsafe(events.put_nowait, _DONE))
        try:
            await asyncio.wrap_future(ticket.accepted)  # a prompt that cannot fit is still a 400 here
        except asyncio.CancelledError:
            job.cancel.set()
            raise

        async def body() -> AsyncIterator[str]:
            completed = False
            try:
                yield _sse(responder.chunk({"role": "assistant", "content": ""} if responder.chat else {}))
                while True:
                    item = await events.get()
                    if item is _DONE:
                        break
                    if progress:
                        yield _sse(responder.chunk({}, caspo=item))
                try:
                    content, reason, usage, caspo = finish(ticket)
                except ApiError as exc:  # headers are sent: the error goes in the stream (clients raise it)
                    yield _sse(exc.body())
                    completed = True
                    return
                except Exception as exc:
                    log.exception("search failed mid-stream")
                    yield _sse(error_body(f"internal error: {exc}", "server_error"))
                    completed = True
                    return
                yield _sse(responder.chunk({"content": content}))
                extra: dict[str, Any] = {"caspo": caspo}
                if include_usage:
                    extra["usage"] = usage
                yield _sse(responder.chunk({}, reason, **extra))
                yield "data: [DONE]\n\n"
                completed = True
            finally:
                if not completed:
                    job.cancel.set()  # the client went away: stop the search between two tokens

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/v1/chat/completions", dependencies=[Depends(authorized)])
    async def chat_completions(request: Request) -> Any:
        req = await parse_body(request, ChatRequest)
        check_model(req.model)
        job = chat_job(req, defaults, limits)
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return await respond(job, _Responder("chat", model_id), req.stream, usage, req.caspo.progress)

    @app.post("/v1/completions", dependencies=[Depends(authorized)])
    async def completions(request: Request) -> Any:
        req = await parse_body(request, CompletionRequest)
        check_model(req.model)
        job = completion_job(req, defaults, limits)
        usage = bool(req.stream_options and req.stream_options.include_usage)
        return await respond(job, _Responder("completion", model_id), req.stream, usage, req.caspo.progress)

    return app
