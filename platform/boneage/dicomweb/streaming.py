"""Streamed answers that stay streamed under ASGI: Django consumes a *sync* iterator whole before sending
it from an ASGI server, so there each chunk is made in a worker thread by an async iterator instead."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

_END = object()


def _next_or_end(iterator):
    return next(iterator, _END)


async def _chunks_in_thread(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    iterator = iter(chunks)
    while True:
        chunk = await sync_to_async(_next_or_end, thread_sensitive=True)(iterator)
        if chunk is _END:
            return
        yield chunk  # type: ignore[misc]


def streaming_response(request, chunks: Iterable[bytes], content_type: str) -> StreamingHttpResponse:
    django_request = getattr(request, "_request", request)
    content = _chunks_in_thread(chunks) if isinstance(django_request, ASGIRequest) else chunks
    return StreamingHttpResponse(content, content_type=content_type)
