"""One way to refuse a request: raise `RequestError`, and the app answers `{"error": ...}`."""

from __future__ import annotations

from starlette.responses import JSONResponse


class RequestError(Exception):
    """A request we refuse, with the status and a message that says what was wrong and what is allowed."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)
