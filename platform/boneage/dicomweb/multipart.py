"""multipart/related bodies (RFC 2387) as DICOMweb uses them: parse STOW requests, build WADO answers."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class MultipartError(ValueError):
    """The body is not a well-formed multipart/related message; the text says where it broke."""


@dataclass(frozen=True)
class Part:
    content_type: str
    data: bytes


_PARAM = re.compile(r';\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def media_type_params(header: str) -> tuple[str, dict[str, str]]:
    """'multipart/related; type="application/dicom"; boundary=x' → ('multipart/related', {...})."""
    media_type = header.split(";", 1)[0].strip().lower()
    params = {key.lower(): value.strip().strip('"') for key, value in _PARAM.findall(header)}
    return media_type, params


def parse_multipart(body: bytes, boundary: str) -> list[Part]:
    """Every part of the body, in order. A missing closing delimiter is an error (a truncated upload)."""
    if not boundary:
        raise MultipartError("The Content-Type has no boundary parameter.")
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise MultipartError("The body does not contain the boundary given in the Content-Type.")
    parts: list[Part] = []
    position = start + len(delimiter)
    while True:
        if body[position:position + 2] == b"--":
            return parts
        if body[position:position + 2] != b"\r\n":
            raise MultipartError(f"Part {len(parts) + 1}: the boundary line is not followed by CRLF.")
        header_end = body.find(b"\r\n\r\n", position + 2)
        if header_end < 0:
            raise MultipartError(f"Part {len(parts) + 1} has no end of headers: the body is truncated.")
        headers = _headers(body[position + 2:header_end])
        next_delimiter = body.find(b"\r\n" + delimiter, header_end + 4)
        if next_delimiter < 0:
            raise MultipartError(f"Part {len(parts) + 1} has no closing boundary: the body is truncated.")
        parts.append(Part(headers.get("content-type", "application/octet-stream"), body[header_end + 4:next_delimiter]))
        position = next_delimiter + 2 + len(delimiter)


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers


def new_boundary() -> str:
    return f"boneage-{uuid.uuid4().hex}"


def multipart_chunks(parts: Iterable[tuple[str, bytes, dict[str, str]]], boundary: str) -> Iterator[bytes]:
    """Stream (content type, bytes, extra headers) parts as one multipart/related body."""
    for content_type, data, extra in parts:
        head = f"--{boundary}\r\nContent-Type: {content_type}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in extra.items())
        yield (head + "\r\n").encode("latin-1")
        yield data
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("latin-1")
