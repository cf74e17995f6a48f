"""Debian's Orthanc with its DICOMweb plugin as a real PACS: a temp config and storage, free loopback ports."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def orthanc(tmp_path):
    """The DICOMweb root of a fresh Orthanc (http://127.0.0.1:PORT/dicom-web), stopped after the test."""
    if not (Path(ORTHANC).exists() and Path(DICOMWEB_PLUGIN).exists()):
        pytest.fail("Orthanc with its DICOMweb plugin is missing: apt-get install orthanc orthanc-dicomweb")
    http_port, dicom_port = _free_port(), _free_port()
    config = {
        "Name": "boneage-test-pacs", "StorageDirectory": str(tmp_path / "orthanc-db"),
        "IndexDirectory": str(tmp_path / "orthanc-db"), "Plugins": [DICOMWEB_PLUGIN],
        "HttpPort": http_port, "DicomPort": dicom_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "HttpServerEnabled": True, "DicomServerEnabled": False, "ConcurrentJobs": 1, "HttpThreadsCount": 4,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
    }
    config_file = tmp_path / "orthanc.json"
    config_file.write_text(json.dumps(config))
    with open(tmp_path / "orthanc.log", "wb") as log:
        process = subprocess.Popen([ORTHANC, str(config_file)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not start: {(tmp_path / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"{base}/dicom-web"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
