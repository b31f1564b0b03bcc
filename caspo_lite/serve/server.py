"""Loading the engines and running the app: `serve()` for the CLI, `ServerThread` for tests and benches.

One engine per worker, each with ``threads`` llama.cpp threads (default: the cores split
between the workers, so N workers do not oversubscribe the CPU).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caspo_lite.answer_confidence import cached_calibration
from caspo_lite.engines import load_engine
from caspo_lite.engines.llama_cpp import default_threads
from caspo_lite.errors import BackendUnavailable, ConfigError
from caspo_lite.search import get_strategy
from caspo_lite.serve.jobs import ServeDefaults
from caspo_lite.serve.pool import WorkerPool
from caspo_lite.serve.schemas import ServeLimits

log = logging.getLogger(__name__)


def _require_server_deps() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise BackendUnavailable(
            "serve needs fastapi and uvicorn; install them with: pip install 'caspo-lite[serve]'"
        ) from None


def model_id_of(ref: str) -> str:
    """The id /v1/models shows: a built-in name as given, a file path by its stem."""
    p = Path(ref)
    return p.stem if p.suffix == ".gguf" or os.sep in ref else ref


@dataclass
class ServeSettings:
    model: str = "smollm2-135m"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    threads: int | None = None  # llama.cpp threads per worker
    n_ctx: int = 8192
    gpu_layers: int = 0
    api_key: str | None = None

    def check(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: need at least 1 worker")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: not a TCP port (0-65535)")
        if self.n_ctx < 256:
            raise ConfigError(f"--ctx {self.n_ctx}: too small for a prompt and a search (use 2048 or more)")


def load_pool(settings: ServeSettings, limits: ServeLimits) -> WorkerPool:
    threads = settings.threads or max(1, default_threads() // settings.workers)
    return WorkerPool.load(
        lambda _i: load_engine(
            settings.model, n_threads=threads, n_gpu_layers=settings.gpu_layers, n_ctx=settings.n_ctx
        ),
        settings.workers,
        limits.queue_size,
    )


def build_app(
    settings: ServeSettings, defaults: ServeDefaults, limits: ServeLimits, pool: WorkerPool | None = None
) -> tuple[Any, WorkerPool]:
    _require_server_deps()
    settings.check()
    from caspo_lite.serve.app import create_app

    s = defaults.search
    get_strategy(s.strategy, s, defaults.confidence, defaults.steps)  # a bad default fails before loading
    pool = pool or load_pool(settings, limits)
    model_ref = str(settings.model)
    app = create_app(
        pool,
        model_id_of(settings.model),
        defaults,
        limits,
        settings.api_key,
        calibration=lambda strategy: cached_calibration(model_ref, strategy),
    )
    return app, pool


def serve(settings: ServeSettings, defaults: ServeDefaults, limits: ServeLimits) -> None:
    """Load the model into ``settings.workers`` engines and serve until interrupted."""
    import uvicorn

    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_key:
        log.warning("serving on %s without --api-key: anyone who can reach it can use it", settings.host)
    app, pool = build_app(settings, defaults, limits)
    try:
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=5
        )
    finally:
        pool.close()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerThread:
    """The app under uvicorn on a background thread (tests, benches): ``with ServerThread(app) as url``."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="caspo-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
