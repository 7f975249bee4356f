"""The one error type of the simulator: an HTTP status with GitHub's error body."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Answered as GitHub answers: `{"message", "documentation_url", "status"}` (+ `errors`)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def body(self, documentation_url: str = "https://docs.github.com/rest") -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "documentation_url": documentation_url}
        if self.errors:
            out["errors"] = self.errors
        out["status"] = str(self.status)
        return out


def not_found() -> ApiError:
    return ApiError(404, "Not Found")
