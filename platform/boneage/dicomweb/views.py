"""DICOMweb under /dicomweb/projects/{p}/: STOW-RS, QIDO-RS, WADO-RS. Thin: authorize, parse, call, answer.
Errors are JSON {"error", "detail"} with the DICOMweb status; a STOW answer is DICOM JSON."""
from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

from django.conf import settings
from django.http import HttpResponse
from pydicom.valuerep import AMBIGUOUS_VR, BYTES_VR, VR
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from boneage.api import error_response
from boneage.dicomweb import catalog, qido
from boneage.dicomweb.frames import frame_bytes
from boneage.dicomweb.multipart import (
    MultipartError,
    media_type_params,
    multipart_chunks,
    new_boundary,
    parse_multipart,
)
from boneage.dicomweb.stow import store_parts
from boneage.dicomweb.streaming import streaming_response
from boneage.review.visibility import blind_view
from boneage.studies.access import CAN_DELETE, CAN_INGEST, check_project
from boneage.studies.actions import do_delete_dicom_study
from boneage.studies.derive import display_as_stored, ensure_derived_images
from boneage.studies.ingest.errors import IngestError
from boneage.studies.models import Project, Study

DICOM_JSON = "application/dicom+json"
HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")
BULK_VRS = (BYTES_VR | AMBIGUOUS_VR) - {VR.US_SS}  # the VRs whose long values the metadata points at (pydicom's)


class AnyAccept(BaseContentNegotiation):
    """DICOMweb media types are negotiated by each view; DRF only renders our JSON errors."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type

    def select_parser(self, request, parsers):
        return parsers[0]


class LeaveBodyUnread(BaseParser):
    """DRF's CSRF check asks for request.POST; the STOW view reads the raw body itself, within its limit."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


class DicomWebView(APIView):
    schema = None  # PS3.18 resources, documented in docs/dicomweb.md: not part of the REST schema
    renderer_classes = [JSONRenderer]
    parser_classes = [LeaveBodyUnread]
    content_negotiation_class = AnyAccept

    def base_url(self, request, project_id: int) -> str:
        """Where clients reach this project's DICOMweb: on DICOMWEB_BASE_URL when set (a client or proxy may send a
        Host header without its port: dicomweb-client sends `Host: 127.0.0.1`), else from the request."""
        if settings.DICOMWEB_BASE_URL:
            return f"{settings.DICOMWEB_BASE_URL}/dicomweb/projects/{project_id}"
        return request.build_absolute_uri(f"/dicomweb/projects/{project_id}")

    def entries(self, request, project_id: int, **uids) -> tuple[list[catalog.Entry], Project]:
        project, role = check_project(request.user, project_id)
        view = blind_view(project, request.user, role)
        return catalog.project_entries(project, hides_report=view.hides, **uids), project


def dicom_json(datasets, **kwargs) -> HttpResponse:
    # An element whose stored value does not convert (a garbled number, say) is left out, not a 500 for the search.
    body = json.dumps([ds.to_json_dict(suppress_invalid_tags=True, **kwargs) for ds in datasets])
    return HttpResponse(body, content_type=DICOM_JSON)


class StudiesView(DicomWebView):
    """GET: QIDO-RS search for studies. POST: STOW-RS store instances."""

    def get(self, request, project_id: int):
        return search(self, request, project_id, "studies")

    def post(self, request, project_id: int):
        return store(self, request, project_id)


class StudyView(DicomWebView):
    """GET .../studies/{S}: WADO-RS the whole study. POST: STOW-RS into that study."""

    def get(self, request, project_id: int, study_uid: str):
        return retrieve(self, request, project_id, study_uid=study_uid)

    def post(self, request, project_id: int, study_uid: str):
        return store(self, request, project_id, study_uid)

    def delete(self, request, project_id: int, study_uid: str):
        """Delete the study: every film of it in this project (each a platform study) with what was made from them.
        Project admins only, as `DELETE /api/studies/{id}/`; 204, or 404 when the project has no such study."""
        project, _ = check_project(request.user, project_id, CAN_DELETE)
        do_delete_dicom_study(project, study_uid, actor=request.user)
        return HttpResponse(status=204)


def store(view: DicomWebView, request, project_id: int, study_uid: str = ""):
    project, _ = check_project(request.user, project_id, CAN_INGEST)
    media_type, params = media_type_params(request.META.get("CONTENT_TYPE", ""))
    if media_type != "multipart/related" or params.get("type", "application/dicom").lower() != "application/dicom":
        return error_response(415, "unsupported_media_type", 'STOW-RS takes multipart/related; type="application/dicom".')
    limit = settings.DICOMWEB_STOW_MAX_BYTES
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > limit:
        return error_response(413, "request_too_large", f"The body is {int(declared):,} bytes; the limit is {limit:,} bytes.")
    # Chunked bodies carry no length: read at most one byte over the limit to know.
    body = request._request.read(limit + 1)
    if len(body) > limit:
        return error_response(413, "request_too_large", f"The body is over the limit of {limit:,} bytes.")
    try:
        parts = parse_multipart(body, params.get("boundary", ""))
    except MultipartError as bad:
        return error_response(400, "invalid_multipart", f"{bad} Nothing was stored.")
    if not parts:
        return error_response(400, "no_parts", "The multipart body has no parts. Nothing was stored.")
    if len(parts) > settings.UPLOAD_MAX_FILES:
        return error_response(413, "too_many_files", f"{len(parts)} parts; at most {settings.UPLOAD_MAX_FILES} per request. Nothing was stored.")
    outcome = store_parts(project, request.user, parts, study_uid=study_uid,
                          retrieve_base=view.base_url(request, project.pk))
    return HttpResponse(json.dumps(outcome.response.to_json_dict()), status=outcome.status, content_type=DICOM_JSON)


def search(view: DicomWebView, request, project_id: int, level: str, **uids):
    entries, _ = view.entries(request, project_id, **uids)
    try:
        query = qido.parse_query(dict(request.GET.lists()))
    except qido.QueryError as bad:
        return error_response(400, "invalid_query", str(bad))
    records = qido.group_records(catalog.readable_headers(entries), level)
    found = qido.select(records, query, qido.level_fields(level))
    return dicom_json(found)


def retrieve(view: DicomWebView, request, project_id: int, **uids):
    entries, _ = view.entries(request, project_id, **uids)
    if not entries:
        return error_response(404, "not_found", f"No instances match {_describe(uids)} in this project.")
    accept = request.META.get("HTTP_ACCEPT", "*/*")
    if not _accepts(accept, "application/dicom"):
        return error_response(406, "not_acceptable", 'WADO-RS returns multipart/related; type="application/dicom".')
    catalog.check_stored(entries)  # a lost file is a 410 before the stream starts, not a broken stream
    boundary = new_boundary()
    parts: Iterator[tuple[str, bytes, dict[str, str]]] = (("application/dicom", catalog.read_bytes(e), {}) for e in entries)
    response = streaming_response(request, multipart_chunks(parts, boundary),
                                  f'multipart/related; type="application/dicom"; boundary={boundary}')
    return response


def _octets(boundary: str) -> str:
    return f'multipart/related; type="application/octet-stream"; boundary={boundary}'


def _accepts(accept: str, media: str) -> bool:
    """Does the Accept header allow multipart/related of `media` (or anything)?"""
    for item in accept.split(","):
        kind, params = media_type_params(item)
        if kind in ("*/*", "multipart/*") or (kind == "multipart/related" and params.get("type", media).lower() in (media, "*/*")):
            return True
        if kind == media:
            return True
    return False


def _describe(uids: dict[str, str]) -> str:
    return ", ".join(f"{name.replace('_uid', '').replace('_', ' ')} {value}" for name, value in uids.items() if value) or "the request"


def metadata(view: DicomWebView, request, project_id: int, **uids):
    entries, project = view.entries(request, project_id, **uids)
    if not entries:
        return error_response(404, "not_found", f"No instances match {_describe(uids)} in this project.")
    accept = request.META.get("HTTP_ACCEPT", "*/*")  # OHIF sends "application/dicom+json, application/json, */*"
    if not any(media_type_params(item)[0] in (DICOM_JSON, "application/json", "*/*", "application/*")
               for item in accept.split(",")):
        return error_response(406, "not_acceptable", "Metadata is application/dicom+json.")
    base = view.base_url(request, project.pk)
    out = []
    for entry in entries:
        instance = f"{base}/studies/{entry.study_uid}/series/{entry.series_uid}/instances/{entry.sop_uid}"
        ds = catalog.read_dataset(entry)

        def bulk(element, instance=instance):
            return f"{instance}/frames/1" if element.tag == 0x7FE00010 else f"{instance}/bulkdata/{element.tag:08X}"

        out.append(ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=bulk, suppress_invalid_tags=True))
    return HttpResponse(json.dumps(out), content_type=DICOM_JSON)


class SeriesSearchView(DicomWebView):
    def get(self, request, project_id: int, study_uid: str = ""):
        return search(self, request, project_id, "series", study_uid=study_uid)


class InstancesSearchView(DicomWebView):
    def get(self, request, project_id: int, study_uid: str = "", series_uid: str = ""):
        return search(self, request, project_id, "instances", study_uid=study_uid, series_uid=series_uid)


class SeriesView(DicomWebView):
    def get(self, request, project_id: int, study_uid: str, series_uid: str):
        return retrieve(self, request, project_id, study_uid=study_uid, series_uid=series_uid)


class InstanceView(DicomWebView):
    def get(self, request, project_id: int, study_uid: str, series_uid: str, sop_uid: str):
        return retrieve(self, request, project_id, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)


class MetadataView(DicomWebView):
    def get(self, request, project_id: int, study_uid: str, series_uid: str = "", sop_uid: str = ""):
        return metadata(self, request, project_id, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)


class FramesView(DicomWebView):
    def get(self, request, project_id: int, study_uid: str, series_uid: str, sop_uid: str, frames: str):
        entries, _ = self.entries(request, project_id, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
        if not entries:
            return error_response(404, "not_found", f"No instance {sop_uid} in series {series_uid} of study {study_uid}.")
        try:
            numbers = [int(n) for n in frames.split(",")]
            chunks = frame_bytes(catalog.read_bytes(entries[0]), numbers)
        except ValueError:
            return error_response(400, "invalid_frames", f"Frame numbers are a comma-separated list of integers, not {frames!r}.")
        boundary = new_boundary()
        parts: Iterator[tuple[str, bytes, dict[str, str]]] = (("application/octet-stream", c, {}) for c in chunks)
        return streaming_response(request, multipart_chunks(parts, boundary), _octets(boundary))


class BulkDataView(DicomWebView):
    def get(self, request, project_id: int, study_uid: str, series_uid: str, sop_uid: str, tag: str):
        if not HEX_TAG.fullmatch(tag):
            return error_response(400, "invalid_tag", f"A bulk-data tag is 8 hexadecimal digits, group then element "
                                                      f"(e.g. 60003000), not {tag[:40]!r}.")
        entries, _ = self.entries(request, project_id, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
        ds = catalog.read_dataset(entries[0]) if entries else None
        element = ds.get(int(tag, 16)) if ds is not None else None
        if element is None or element.VR not in BULK_VRS or not isinstance(element.value, bytes):  # a name or a number is a value of the metadata
            return error_response(404, "not_found", f"No bulk data {tag} in instance {sop_uid}.")
        boundary = new_boundary()
        parts: list[tuple[str, bytes, dict[str, str]]] = [("application/octet-stream", bytes(element.value), {})]
        return streaming_response(request, multipart_chunks(parts, boundary), _octets(boundary))


RENDERED_TYPES = ("image/png", "image/jpeg")  # the first is the answer to */* and image/*


def rendered_type(accept: str) -> str | None:
    """The media type /rendered answers for an Accept header (q-values honoured, q=0 refused), None when it offers
    neither PNG nor JPEG."""
    ranked = []
    for order, item in enumerate(accept.split(",") if accept.strip() else ["*/*"]):
        kind, params = media_type_params(item)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        if quality > 0:
            ranked.append((-quality, order, kind))
    for _, _, kind in sorted(ranked):
        if kind in RENDERED_TYPES:
            return kind
        if kind in ("*/*", "image/*"):
            return RENDERED_TYPES[0]
    return None


class RenderedView(DicomWebView):
    """The display image of an original instance (bright bone on dark, like the viewer shows it): PNG, or JPEG when
    the Accept header asks for it; 406 for anything else."""

    def get(self, request, project_id: int, study_uid: str, series_uid: str, sop_uid: str, frame: str = "1"):
        entries, _ = self.entries(request, project_id, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
        entries = [e for e in entries if e.kind == "original"]
        if not entries or frame != "1":
            return error_response(404, "not_found", f"No renderable instance {sop_uid} (frame {frame}) in this project.")
        media_type = rendered_type(request.META.get("HTTP_ACCEPT", ""))
        if media_type is None:
            return error_response(406, "not_acceptable", "Rendered images are image/png or image/jpeg.")
        try:
            image = ensure_derived_images(Study.objects.get(pk=entries[0].study_id).image, work_copy=False)
            data = display_as_stored(image)  # the instance as stored, whatever frame the platform reads it in
        except IngestError as error:  # as GET /api/studies/{id}/image/: recorded on the study, never a 500
            return error_response(422, "image_undecodable", f"The stored original cannot be decoded: {error.detail}")
        except FileNotFoundError:
            raise catalog.file_gone(entries[0]) from None
        return HttpResponse(data if media_type == "image/png" else jpeg_of_png(data), content_type=media_type)


def jpeg_of_png(data: bytes, quality: int = 90) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    with PILImage.open(io.BytesIO(data)) as image:
        image.convert("L").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
