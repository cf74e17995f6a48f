"""The one error type of the platform (docs/architecture.md): a refusal with its HTTP status, a stable code and a
sentence a person can act on.

Actions raise it (`check_*` and `do_*`); the API's exception handler (boneage.api.json_error_handler) renders it
as `{"error": code, "detail": detail, **extra}` with the status, so views do not translate it. An app may name a
subclass after itself (ModelingError, ReviewError …) for readability; it adds nothing.
"""
from __future__ import annotations

from typing import Any


class AppError(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra
