"""Small helpers for the DICOMweb tests: STOW bodies built by hand, multipart answers read back."""
from __future__ import annotations

import io

import pydicom
from boneage.dicomweb.multipart import media_type_params, parse_multipart

BOUNDARY = "test-boundary-42"


def stow_body(*parts: tuple[str, bytes], boundary: str = BOUNDARY) -> bytes:
    body = b""
    for content_type, data in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def stow(client, project, body: bytes, *, boundary: str = BOUNDARY, path: str = "studies"):
    return client.post(f"/dicomweb/projects/{project.pk}/{path}", data=body,
                       content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
                       HTTP_ACCEPT="application/dicom+json")


def read_parts(response) -> list[bytes]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    _, params = media_type_params(response["Content-Type"])
    return [part.data for part in parse_multipart(body, params["boundary"])]


def datasets(response) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(data)) for data in read_parts(response)]


def json_datasets(response) -> list[pydicom.Dataset]:
    return [pydicom.Dataset.from_json(item) for item in response.json()]
