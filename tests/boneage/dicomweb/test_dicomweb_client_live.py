"""dicomweb-client, a real DICOMweb client, against the platform served by Daphne: a native-size
instance (over dicomweb-client's 1 MB chunk size, so sent with Transfer-Encoding: chunked), search,
retrieve, metadata and frames."""
from __future__ import annotations

import numpy as np
import pytest
from boneage.studies.models import Study
from dicomweb_client.api import DICOMwebClient
from rest_framework.authtoken.models import Token

from tests.dicom_factory import make_dicom_dataset, ramp

pytestmark = pytest.mark.django_db(transaction=True)


def client_for(server, project, user) -> DICOMwebClient:
    token, _ = Token.objects.get_or_create(user=user)
    return DICOMwebClient(f"{server}/dicomweb/projects/{project.pk}", headers={"Authorization": f"Bearer {token.key}"})


def native_size_radiograph():
    """1800 × 1500 12-bit pixels, 5.4 MB: the size of a real hand radiograph."""
    ds = make_dicom_dataset(ramp(1800, 1500), study_date="20240207")
    ds.PatientID, ds.AccessionNumber = "PID-LIVE", "ACC-LIVE"
    return ds


def test_dicomweb_client_stores_a_chunked_native_size_instance_and_reads_it_back(live_asgi_server, project, member, caplog):
    client = client_for(live_asgi_server, project, member)
    ds = native_size_radiograph()
    with caplog.at_level("INFO", logger="dicomweb_client"):
        answer = client.store_instances([ds])
    assert "chunked transfer encoding" in caplog.text  # the client did send it chunked
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [ds.SOPInstanceUID]
    assert Study.objects.get(project=project).sop_instance_uid == ds.SOPInstanceUID

    found = client.search_for_studies(search_filters={"PatientID": "PID-LIVE", "StudyDate": "20240101-20240301"})
    assert [study["0020000D"]["Value"][0] for study in found] == [ds.StudyInstanceUID]
    assert client.search_for_studies(search_filters={"PatientID": "nobody"}) == []
    series = client.search_for_series(ds.StudyInstanceUID)
    assert series[0]["0020000E"]["Value"] == [ds.SeriesInstanceUID]
    instances = client.search_for_instances(ds.StudyInstanceUID, ds.SeriesInstanceUID)
    assert instances[0]["00080018"]["Value"] == [ds.SOPInstanceUID]

    back = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert np.array_equal(back.pixel_array, ds.pixel_array) and back.PatientID == "PID-LIVE"
    assert len(client.retrieve_study(ds.StudyInstanceUID)) == 1

    metadata = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert metadata["00280010"]["Value"] == [1800] and "BulkDataURI" in metadata["7FE00010"]

    frames = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1])
    assert frames[0] == bytes(ds.PixelData)


def test_dicomweb_client_storing_the_same_instance_twice_keeps_one_study(live_asgi_server, project, owner):
    client = client_for(live_asgi_server, project, owner)
    ds = native_size_radiograph()
    client.store_instances([ds])
    again = client.store_instances([ds])
    assert again.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert Study.objects.filter(project=project).count() == 1


def test_the_dataset_zip_streams_through_the_asgi_server(live_asgi_server, project, owner):
    import io
    import zipfile

    import requests
    from boneage.annotations.actions import do_import_label
    from boneage.studies.actions import do_ingest

    from tests.dicom_factory import dicom_bytes

    do_import_label(do_ingest(project, owner, dicom_bytes(), "a.dcm").study, 100.0)
    token, _ = Token.objects.get_or_create(user=owner)
    response = requests.get(f"{live_asgi_server}/api/projects/{project.pk}/export/?format=rsna",
                            headers={"Authorization": f"Token {token.key}"}, timeout=60)
    assert response.status_code == 200
    assert "labels.csv" in zipfile.ZipFile(io.BytesIO(response.content)).namelist()


@pytest.fixture
def two_megabyte_stow_limit(settings):
    """Set before the server starts (its process inherits the settings)."""
    settings.DICOMWEB_STOW_MAX_BYTES = 2_000_000


def test_a_chunked_body_over_the_stow_limit_is_refused_with_413_and_nothing_is_stored(
        two_megabyte_stow_limit, live_asgi_server, project, owner):
    import requests

    client = client_for(live_asgi_server, project, owner)
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances([native_size_radiograph()])  # 5.4 MB, chunked: no Content-Length to check first
    assert refused.value.response.status_code == 413
    assert refused.value.response.json()["error"] == "request_too_large"
    assert Study.objects.count() == 0
