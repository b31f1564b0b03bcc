"""`caspo-lite serve` through the real `openai` client, on the tiny GGUF under uvicorn.

The server runs in a background thread on a free localhost port with real llama.cpp workers;
the tests speak HTTP to it like any OpenAI client would.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from caspo_lite.config import SearchSection  # noqa: E402
from caspo_lite.engines.llama_cpp import LlamaCppEngine  # noqa: E402
from caspo_lite.serve.jobs import ServeDefaults  # noqa: E402
from caspo_lite.serve.pool import WorkerPool  # noqa: E402
from caspo_lite.serve.report import reported_confidence, tokens_saved_vs_sc  # noqa: E402
from caspo_lite.serve.schemas import ServeLimits  # noqa: E402
from caspo_lite.serve.server import ServerThread, ServeSettings, build_app  # noqa: E402

MODEL = "tiny-f32"
QUESTION = [{"role": "user", "content": "What is 3 + 4 - 2?"}]
CHAT = {"prompt_style": "chat", "task": "arith"}
LIMITS = ServeLimits(max_k=16, max_tokens=128, max_prompt_chars=4000, queue_size=8)


def _engine(gguf: Path) -> LlamaCppEngine:
    return LlamaCppEngine(gguf, n_ctx=1024, n_threads=1)


@pytest.fixture(scope="module")
def server(tiny_gguf: Path) -> Any:
    pool = WorkerPool([_engine(tiny_gguf), _engine(tiny_gguf)], queue_size=LIMITS.queue_size)
    defaults = ServeDefaults(SearchSection(k=4, max_tokens=48, seed=0))
    app, _ = build_app(ServeSettings(model=str(tiny_gguf)), defaults, LIMITS, pool=pool)
    with ServerThread(app) as url:
        yield url, pool
    pool.close()


@pytest.fixture
def client(server: Any) -> Any:
    return openai.OpenAI(base_url=server[0], api_key="unused", max_retries=0)


def _post(url: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(
        url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _chat(client: Any, seed: int = 3, **caspo: Any) -> Any:
    return client.chat.completions.create(
        model=MODEL, messages=QUESTION, seed=seed, extra_body={"caspo": {**CHAT, **caspo}}
    )


# -- pure helpers -------------------------------------------------------------------------------


def test_uncalibrated_confidence_is_marked_and_a_map_is_applied() -> None:
    from types import SimpleNamespace

    from caspo_lite.calibration import AnswerCalibration

    result = SimpleNamespace(answer="7", confidence=0.61234, paths=[], events=[])
    assert reported_confidence(result) == {
        "confidence": 0.6123,
        "calibrated": False,
        "confidence_kind": "uncalibrated",
    }
    # an isotonic map that halves the raw path confidence on [0, 1]
    halve = AnswerCalibration("path", "isotonic", {"x": [0.0, 1.0], "y": [0.0, 0.5]}, "cat")
    out = reported_confidence(SimpleNamespace(answer="7", confidence=0.6, paths=[], events=[]), halve)
    assert out["calibrated"] is True and out["raw_confidence"] == 0.6
    assert out["confidence"] == pytest.approx(0.3, abs=1e-4)


def test_tokens_saved_vs_sc_estimates_k_mean_lengths_minus_used() -> None:
    from caspo_lite.search.events import BranchFinished

    paths = [BranchFinished(0, "", "1", 0.5, 10, "eos"), BranchFinished(1, "", "1", 0.5, 20, "eos")]
    assert tokens_saved_vs_sc(paths, n_tokens=40, k=8) == 8 * 15 - 40
    assert tokens_saved_vs_sc([], n_tokens=40, k=8) is None


# -- the routes through the openai client --------------------------------------------------------


def test_models_lists_the_served_model(client: Any) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_chat_completion_carries_answer_and_caspo_object(client: Any) -> None:
    r = _chat(client, strategy="cat", k=4, tree=True)
    caspo = r.model_extra["caspo"]
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert caspo["strategy"] == "cat" and caspo["k"] == 4 and caspo["calibrated"] is False
    assert 0.0 < caspo["confidence"] <= 1.0
    assert caspo["tokens"] == r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert caspo["prunes"] >= 0 and 1 <= caspo["branches"] <= 4
    assert len(caspo["tree"]) == caspo["branches"]
    # the content is the winning path's text, and its answer is the reported one
    if caspo["answer"] is not None and caspo["finished_paths"]:
        from caspo_lite.tasks import get_task

        assert get_task("arith").extract_answer(r.choices[0].message.content) == caspo["answer"]


def test_a_calibrated_model_reports_its_calibrated_probability(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served model's calibration for the strategy that ran maps the confidence (as in solve)."""
    import shutil

    from caspo_lite.calibration import AnswerCalibration, save_answer_calibration
    from caspo_lite.calibration_file import calibration_path

    monkeypatch.setenv("CASPO_LITE_HOME", str(tmp_path / "home"))  # the map must not leak to others
    model = tmp_path / f"{MODEL}.gguf"  # served under the same model id as the other tests
    shutil.copyfile(tiny_gguf, model)
    halve = AnswerCalibration("path", "isotonic", {"x": [0.0, 1.0], "y": [0.0, 0.5]}, "greedy")
    save_answer_calibration(calibration_path(model), halve)
    pool = WorkerPool([_engine(model)], queue_size=2)
    defaults = ServeDefaults(SearchSection(strategy="greedy", k=1, max_tokens=48, seed=0))
    app, _ = build_app(ServeSettings(model=str(model)), defaults, LIMITS, pool=pool)
    try:
        with ServerThread(app) as url:
            c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
            greedy = _chat(c, strategy="greedy").model_extra["caspo"]
            sc = _chat(c, strategy="sc", k=2).model_extra["caspo"]  # no map for sc: uncalibrated
    finally:
        pool.close()
    assert greedy["calibrated"] is True and greedy["calibration"] != "uncalibrated"
    if greedy["answer"] is not None:
        assert greedy["confidence"] == pytest.approx(greedy["raw_confidence"] / 2, abs=1e-3)
    assert sc["calibrated"] is False


def test_request_picks_strategy_and_k(client: Any) -> None:
    greedy = _chat(client, strategy="greedy").model_extra["caspo"]
    sc = _chat(client, strategy="sc", k=3).model_extra["caspo"]
    assert greedy["strategy"] == "greedy" and greedy["branches"] == 1
    assert sc["strategy"] == "sc" and sc["branches"] == 3 and "tree" not in sc


def test_streamed_chat_matches_the_unstreamed_answer(client: Any) -> None:
    full = _chat(client, strategy="cat", k=4)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=QUESTION,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"caspo": {**CHAT, "strategy": "cat", "k": 4}},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    progress = [c.model_extra["caspo"] for c in chunks[:-1] if (c.model_extra or {}).get("caspo")]
    assert {"started", "finished"} <= {p["event"] for p in progress}
    last = chunks[-1]
    assert last.choices[0].finish_reason == full.choices[0].finish_reason
    assert last.model_extra["caspo"]["answer"] == full.model_extra["caspo"]["answer"]
    assert last.usage.completion_tokens == full.usage.completion_tokens


def test_completions_plain_and_streamed(client: Any) -> None:
    prompt = "Q: What is 2 + 5?\nA: Step 1:"
    r = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=24, seed=1, extra_body={"caspo": {"k": 2}}
    )
    assert r.object == "text_completion" and isinstance(r.choices[0].text, str)
    assert r.model_extra["caspo"]["k"] == 2
    chunks = list(
        client.completions.create(
            model=MODEL, prompt=prompt, max_tokens=24, seed=1, stream=True, extra_body={"caspo": {"k": 2}}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    assert chunks[-1].model_extra["caspo"]["answer"] == r.model_extra["caspo"]["answer"]


def test_concurrent_requests_are_all_answered(client: Any, server: Any) -> None:
    before = server[1].served
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda i: _chat(client, strategy="sc", k=2, seed=i), range(12)))
    assert len(results) == 12 and all(r.model_extra["caspo"]["strategy"] == "sc" for r in results)
    assert server[1].served - before == 12


# -- bad requests: a 4xx with an OpenAI error body, and the server keeps serving -------------------


def test_malformed_json_is_a_400_with_an_error_body(server: Any) -> None:
    status, body = _post(server[0], "/chat/completions", b'{"model": "tiny-f32", "messages": [')
    assert status == 400 and "malformed JSON" in body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"
    status, body = _post(server[0], "/completions", b"[1, 2]")
    assert status == 400 and "JSON object" in body["error"]["message"]
    # a JSON body under curl -d's form Content-Type is still read as JSON
    good = {"model": MODEL, "prompt": "Q: 1 + 1?\nA:", "max_tokens": 8, "caspo": {"strategy": "greedy"}}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = _post(server[0], "/completions", json.dumps(good).encode(), form)
    assert status == 200 and body["caspo"]["strategy"] == "greedy"


@pytest.mark.parametrize(
    ("caspo", "param", "needle"),
    [
        ({"strategy": "magic"}, "caspo.strategy", "unknown strategy 'magic'"),
        ({"k": 100000}, "caspo.k", "out of range"),
        ({"k": 0}, "caspo.k", "out of range"),
        ({"beam_width": 999}, "caspo.beam_width", "limit"),
        ({"prune_percentile": 150}, "caspo", "prune_percentile"),
        ({"kk": 3}, "caspo.kk", "Extra inputs"),
        ({"task": "nosuchtask"}, "caspo.task", "nosuchtask"),
    ],
)
def test_bad_search_fields_are_400s_naming_the_field(
    client: Any, caspo: dict, param: str, needle: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _chat(client, **caspo)
    body = err.value.body
    assert err.value.status_code == 400 and body["param"] == param and needle in body["message"]


def test_other_bad_requests(client: Any, server: Any) -> None:
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model=MODEL, messages=QUESTION, max_tokens=10**6)
    with pytest.raises(openai.BadRequestError, match="n = 2"):
        client.chat.completions.create(model=MODEL, messages=QUESTION, n=2)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    with pytest.raises(openai.BadRequestError, match="no non-empty user message"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "hi"}])
    status, body = _post(server[0], "/chat/completions", json.dumps({"model": MODEL}).encode())
    assert status == 400 and body["error"]["param"] == "messages"


@pytest.mark.parametrize("stream", [False, True])
def test_over_long_prompts_are_400s(client: Any, stream: bool) -> None:
    too_many_chars = [{"role": "user", "content": "1 + 1 " * 1000}]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=too_many_chars, stream=stream)
    assert err.value.body["code"] == "context_length_exceeded"
    # within the character limit but not the 1024-token context: refused by the worker, still a 400
    too_many_tokens = "+".join(str(i % 10) for i in range(1900))
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=MODEL, prompt=too_many_tokens, stream=stream)
    assert err.value.body["code"] == "context_length_exceeded" and "tokens" in err.value.body["message"]
    assert _chat(client, strategy="greedy").model_extra["caspo"]["strategy"] == "greedy"  # still serving


# -- an API key, and a full queue -----------------------------------------------------------------


class _GatedEngine:
    """The real engine, but `render` waits on a gate: holds a worker busy on demand."""

    def __init__(self, engine: LlamaCppEngine, gate: threading.Event) -> None:
        self._engine, self._gate = engine, gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def render(self, prompt: Any) -> list[int]:
        self._gate.wait(timeout=60)
        return self._engine.render(prompt)


def test_api_key_and_a_full_queue_answers_503(tiny_gguf: Path) -> None:
    gate = threading.Event()
    pool = WorkerPool([_GatedEngine(_engine(tiny_gguf), gate)], queue_size=1)  # type: ignore[list-item]
    settings = ServeSettings(model=str(tiny_gguf), api_key="sekrit")
    app, _ = build_app(settings, ServeDefaults(SearchSection(k=2, max_tokens=16)), LIMITS, pool=pool)
    try:
        with ServerThread(app) as url:
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
            good = openai.OpenAI(base_url=url, api_key="sekrit", max_retries=0)
            with ThreadPoolExecutor(2) as ex:

                def wait_for(key: str) -> None:
                    deadline = time.monotonic() + 60
                    while pool.status()[key] < 1:
                        assert time.monotonic() < deadline, pool.status()
                        time.sleep(0.02)

                held = [ex.submit(_chat, good, strategy="greedy")]
                wait_for("busy")  # the one worker is held at the gate
                held.append(ex.submit(_chat, good, strategy="greedy"))
                wait_for("queued")  # the one queue slot is taken
                with pytest.raises(openai.InternalServerError) as err:
                    _chat(good, strategy="greedy")
                assert err.value.status_code == 503 and err.value.body["code"] == "queue_full"
                assert err.value.response.headers["retry-after"] == "1"
                gate.set()
                assert all(h.result(timeout=60).model_extra["caspo"]["strategy"] == "greedy" for h in held)
    finally:
        gate.set()
        pool.close()


def test_a_search_that_could_overflow_the_kv_cache_is_refused_up_front(client: Any) -> None:
    """16 SC paths x 128 tokens cannot share a 1024-token context: a 400 before any decoding."""
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL,
            messages=QUESTION,
            max_tokens=128,
            extra_body={"caspo": {**CHAT, "strategy": "sc", "k": 16}},
        )
    assert err.value.body["code"] == "context_length_exceeded" and err.value.body["param"] == "caspo.k"
    assert "KV cells" in err.value.body["message"]


# -- the CLI: bad settings are one-line errors, before any model is loaded -----------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--workers", "0"], "--workers 0"),
        (["--strategy", "magic"], "unknown search strategy 'magic'"),
        (["--ctx", "16"], "--ctx 16"),
        (["--model", "/nonexistent/model.gguf"], "model.gguf"),
    ],
)
def test_serve_cli_bad_settings_are_one_line_errors(args: list[str], needle: str) -> None:
    from typer.testing import CliRunner

    from caspo_lite.cli import app

    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code != 0 and (result.exception is None or isinstance(result.exception, SystemExit))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.output


class _SlowEngine:
    """The real engine with every decode call slowed down: a search that lasts long enough to leave."""

    def __init__(self, engine: LlamaCppEngine) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def session(self, n_seqs: int) -> Any:
        inner = self._engine.session(n_seqs)

        class Slow:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def decode(self, tokens: dict[int, int]) -> Any:
                time.sleep(0.1)
                return inner.decode(tokens)

        return Slow()


def test_a_client_that_leaves_mid_stream_cancels_its_search(tiny_gguf: Path) -> None:
    import http.client

    pool = WorkerPool([_SlowEngine(_engine(tiny_gguf))])  # type: ignore[list-item]
    app, _ = build_app(
        ServeSettings(model=str(tiny_gguf)),
        ServeDefaults(SearchSection(k=2, max_tokens=120)),
        LIMITS,
        pool=pool,
    )
    body = {"model": MODEL, "messages": QUESTION, "stream": True, "caspo": {**CHAT, "strategy": "sc"}}
    try:
        with ServerThread(app) as url:
            host, port = url.split("//")[1].split("/")[0].split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request(
                "POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            assert resp.status == 200 and resp.readline().startswith(
                b"data: "
            )  # the role chunk: search running
            conn.sock.close()  # leave without reading the rest
            conn.close()
            deadline = time.monotonic() + 20
            while pool.status()["served"] < 1:
                assert time.monotonic() < deadline, pool.status()
                time.sleep(0.05)
            assert pool.status()["cancelled"] == 1  # stopped between two tokens, not run to the end
    finally:
        pool.close()
