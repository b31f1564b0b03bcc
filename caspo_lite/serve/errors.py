"""OpenAI-style error bodies: ``{"error": {"message", "type", "param", "code"}}``.

Clients (the `openai` package among them) read ``error.message`` and map the status to an
exception class, so every refusal of this server — malformed JSON, unknown strategy, absurd
K, an over-long prompt, a full queue — uses this one shape.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request the server refuses, with the HTTP status and the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
