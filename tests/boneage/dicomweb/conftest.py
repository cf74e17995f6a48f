"""Fixtures of the DICOMweb and DICOM node tests."""
from __future__ import annotations

import socket

import pytest


@pytest.fixture
def node_port():
    """The DICOM node (dicomweb.node.serve, as `manage.py dicom_node` serves it) on a free loopback port."""
    from boneage.dicomweb.node import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve("127.0.0.1", port, block=False)
    yield port
    assert server is not None
    server.shutdown()
