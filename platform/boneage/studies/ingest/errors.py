from __future__ import annotations


class IngestError(Exception):
    """A file we refuse, with the HTTP status, a stable code and a sentence a person understands."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
