"""A real S3 API server for the storage tests: moto's server mode on a loopback port, started once per session.
`s3_storage` points the default storage at a fresh bucket of it for one test (boto3 speaks HTTP to it)."""
from __future__ import annotations

import uuid

import pytest

CREDENTIALS = {"access_key": "test-key", "secret_key": "test-secret", "region_name": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class Bucket:
    def __init__(self, endpoint: str, name: str):
        import boto3

        self.name = name
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["access_key"],
                                   aws_secret_access_key=CREDENTIALS["secret_key"],
                                   region_name=CREDENTIALS["region_name"])
        self.client.create_bucket(Bucket=name)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def s3_storage(s3_server, settings, tmp_path) -> Bucket:
    """Every stored file of this test goes to a new bucket; local copies to a cache outside MEDIA_ROOT."""
    bucket = Bucket(s3_server, f"boneage-{uuid.uuid4().hex[:12]}")
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket.name, "endpoint_url": s3_server, "default_acl": None, **CREDENTIALS}}}
    settings.STORAGE_CACHE_DIR = str(tmp_path / "storage-cache")
    return bucket
