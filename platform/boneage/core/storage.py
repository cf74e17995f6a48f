"""Stored files on either backend: the local media folder (FileSystemStorage) or an object store (S3 through
django-storages). Code that needs a real path (torch.load, the ml/ data loaders) asks `local_file`; code that made
a file on disk (a checkpoint) hands it over with `store_file`. Nothing else needs to know which backend it is.

The platform's one atomic writer (`save_atomic`) and one PNG encoder (`png_bytes`) live here too
(docs/architecture.md); ml/ keeps its own for checkpoints because it never imports Django.
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from PIL import Image as PILImage

logger = logging.getLogger(__name__)


def is_local() -> bool:
    return isinstance(default_storage, FileSystemStorage)


def cache_dir() -> Path:
    """Where downloaded copies of bucket objects live (never under MEDIA_ROOT)."""
    return Path(settings.STORAGE_CACHE_DIR)


def local_file(name: str) -> Path:
    """A filesystem path holding the stored file `name`. On S3 it is downloaded once into the cache (written
    under a temporary name and renamed, so a concurrent reader never sees half a file). Missing: a path that
    does not exist, as on the local backend."""
    if is_local():
        return Path(default_storage.path(name))
    target = _cached_copy(name)
    if target.is_file():
        return target
    if not default_storage.exists(name):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out, default_storage.open(name, "rb") as source:
            shutil.copyfileobj(source, out, length=1024 * 1024)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _cached_copy(name: str) -> Path:
    return cache_dir() / "objects" / name


def writable_path(name: str) -> Path:
    """Where to write a file that will be stored as `name`: its final place on the local backend, a scratch file
    to hand to `store_file` on S3."""
    if is_local():
        path = Path(default_storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    scratch = cache_dir() / "scratch" / name
    scratch.parent.mkdir(parents=True, exist_ok=True)
    return scratch


def store_file(path: Path, name: str) -> str:
    """Make the file written at `writable_path(name)` the stored `name` (a no-op on the local backend)."""
    if is_local():
        return name
    with path.open("rb") as handle:
        stored = default_storage.save(name, File(handle, name=Path(name).name))
    path.unlink(missing_ok=True)
    return stored


def discard(name: str, scratch: Path | None = None) -> None:
    """Remove a stored file and any local scratch or cached copy of it."""
    default_storage.delete(name)
    for path in (scratch, None if is_local() else _cached_copy(name)):
        if path is not None:
            path.unlink(missing_ok=True)


@dataclass(frozen=True)
class StoredFile:
    name: str
    modified: datetime


def list_files(prefix: str) -> Iterator[StoredFile]:
    """Every stored file under `prefix` (a folder name), recursively, with its modification time."""
    folders, files = default_storage.listdir(prefix) if default_storage.exists(prefix) or not is_local() else ([], [])
    for file_name in files:
        name = f"{prefix}/{file_name}"
        yield StoredFile(name, default_storage.get_modified_time(name))
    for folder in folders:
        yield from list_files(f"{prefix}/{folder}")


def save_atomic(name: str, data: bytes, *, durable: bool = True) -> str:
    """Write bytes under `name` in the default storage; a reader never sees a partial file (temp name + rename).

    durable=False skips the fsync: for derived files a re-run recreates (prediction PNGs, seven per study on every
    promotion), where an fsync each would halve batch re-prediction throughput."""
    if is_local():
        path = Path(default_storage.path(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name
    # Object stores (S3) publish an object only once its upload completes: already atomic.
    return default_storage.save(name, ContentFile(data))


def delete_quietly(names: list[str], *, folder: bool = False) -> None:
    """Delete the files; folder=True also removes their folders once empty (object stores have none)."""
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:
            logger.warning("could not delete %s", name, exc_info=True)
    if folder and is_local():
        for parent in {Path(default_storage.path(name)).parent for name in names}:
            try:
                parent.rmdir()
            except OSError:  # not empty (or gone): someone else's files stay
                pass


def png_bytes(array: np.ndarray, *, compress_level: int = 1) -> bytes:
    """A uint8 (grey, RGB, RGBA) or uint16 (grey) array → PNG bytes. Low compression by default: the platform writes
    PNGs on ingest and on every (re-)prediction, where speed matters more than size."""
    image = PILImage.fromarray(array if array.dtype == np.uint16 else array.astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
