from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from boneage.core.errors import AppError


class IngestError(AppError):
    """A file we refuse (boneage.core.errors)."""


@contextmanager
def refusing(status: int, code: str, what: str) -> Iterator[None]:
    """Any failure inside becomes IngestError(status, code, "what: why").

    Catches BaseException on purpose: native decoders can panic (pylibjpeg-rle's Rust panic is a
    pyo3 PanicException, a BaseException), and a panic on a hostile file is still only a bad file.
    Only an interrupt or exit passes through.
    """
    try:
        yield
    except (IngestError, KeyboardInterrupt, SystemExit):
        raise
    except RecursionError as exc:
        raise IngestError(422, "nested_too_deep", "The file is nested too deeply to read.") from exc
    except BaseException as exc:
        raise IngestError(status, code, f"{what}: {describe(exc)}") from exc


def describe(exc: BaseException, limit: int = 300) -> str:
    """The exception as one printable line (no NUL or control characters: it is stored and sent as JSON)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
