"""Durable state of tus uploads: one data file and one small JSON record per upload.

Layout under the store's root::

    <id>.json    the record: owner, scope, length, offset, metadata, creation time,
                 and once finished the headers the completion hook returned
    <id>.bin     the bytes received so far

The record is the truth, and its offset is written only after the data up to it has been
fsynced: every recorded byte is on disk. A record is replaced atomically (temporary file,
fsync, rename, fsync of the directory), so a crash leaves the old record or the new one.
Bytes in the data file past the recorded offset (a PATCH cut short by a crash, a chunk
whose checksum failed) were never acknowledged; :class:`DataWriter` truncates the file to
the recorded offset whenever it opens it, so a restarted server needs no recovery pass and
a client that asks for the offset (HEAD) resumes from the last byte that was made durable.

Every method here blocks on the disk: call them through :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

_ID = re.compile(r"[A-Za-z0-9_-]{22}")
RECORD_VERSION = "tus-upload/1"


def new_upload_id() -> str:
    """128 random bits, base64url without padding (22 characters)."""
    return secrets.token_urlsafe(16)


def valid_upload_id(text: str) -> bool:
    return _ID.fullmatch(text) is not None


@dataclass(frozen=True)
class Upload:
    """One upload as recorded: ``offset`` bytes of ``length`` are durable in ``path``.

    ``completion`` is ``None`` until the completion hook accepted the finished upload; it
    then holds the extra headers that hook returned (repeated on later HEAD requests).
    """

    id: str
    owner: str
    scope: str
    length: int
    offset: int
    metadata: dict[str, str]
    created_at: int
    path: Path
    completion: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not valid_upload_id(self.id):
            raise ValueError(f"not an upload id: {self.id!r}")
        if not self.owner:
            raise ValueError("an upload needs an owner")
        if not 0 <= self.offset <= self.length:
            raise ValueError(f"offset {self.offset} outside 0..{self.length}")
        if self.completion is not None and self.offset != self.length:
            raise ValueError("only a finished upload can be complete")
        for key, value in self.metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("metadata maps strings to strings")

    @property
    def finished(self) -> bool:
        """Every byte is durable (the completion hook may not have run yet)."""
        return self.offset == self.length

    @property
    def complete(self) -> bool:
        """Finished and accepted by the completion hook."""
        return self.completion is not None

    def with_offset(self, offset: int) -> Upload:
        return _replace(self, offset=offset)

    def with_completion(self, headers: dict[str, str]) -> Upload:
        return _replace(self, completion=dict(headers))

    def to_json(self) -> dict[str, Any]:
        return {"v": RECORD_VERSION, "id": self.id, "owner": self.owner, "scope": self.scope,
                "length": self.length, "offset": self.offset, "metadata": self.metadata,
                "created_at": self.created_at, "completion": self.completion}


def _replace(upload: Upload, **changes: Any) -> Upload:
    fields = {**upload.__dict__, **changes}
    return Upload(**fields)


class CorruptRecord(Exception):
    """A record on disk is not one this store wrote: an invariant broke (not a refusal)."""


class Busy(Exception):
    """Another request (in this process or another) is writing this upload's data."""


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class UploadStore:
    """Records and data files of the uploads under ``root`` (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def data_path(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.bin"

    def _record_path(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.json"

    def create(self, upload: Upload) -> None:
        """The empty data file first, then the record: a record never names a missing file."""
        fd = os.open(upload.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.save(upload)

    def save(self, upload: Upload) -> None:
        """Replace the record atomically and durably."""
        final = self._record_path(upload.id)
        tmp = final.with_suffix(".json.tmp")
        data = json.dumps(upload.to_json(), ensure_ascii=False, sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._sync_dir()

    def load(self, upload_id: str) -> Upload | None:
        """The recorded upload, or ``None`` if there is none (or the id is malformed)."""
        if not valid_upload_id(upload_id):
            return None
        try:
            raw = self._record_path(upload_id).read_bytes()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            if doc.get("v") != RECORD_VERSION or doc.get("id") != upload_id:
                raise ValueError("not a record of this upload")
            return Upload(id=doc["id"], owner=doc["owner"], scope=doc["scope"],
                          length=int(doc["length"]), offset=int(doc["offset"]),
                          metadata=dict(doc["metadata"]), created_at=int(doc["created_at"]),
                          path=self.data_path(upload_id),
                          completion=None if doc["completion"] is None
                          else dict(doc["completion"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptRecord(f"record of upload {upload_id} is unreadable: {exc}") from None

    def delete(self, upload_id: str) -> None:
        """The record first (it defines the upload), then the data. Missing files are fine."""
        self._record_path(upload_id).unlink(missing_ok=True)
        self.data_path(upload_id).unlink(missing_ok=True)
        self._sync_dir()

    def ids(self) -> list[str]:
        """Ids of every recorded upload."""
        return sorted(p.stem for p in self.root.glob("*.json") if valid_upload_id(p.stem))

    def orphans(self, older_than_s: float, now_s: float) -> list[Path]:
        """Data files without a record (a crash between the two steps of create or delete)
        whose last change is older than ``older_than_s``."""
        out = []
        for path in self.root.glob("*.bin"):
            if self._record_path(path.stem).exists():
                continue
            with contextlib.suppress(FileNotFoundError):
                if now_s - path.stat().st_mtime > older_than_s:
                    out.append(path)
        return out

    def writer(self, upload: Upload, hasher: Hasher | None = None) -> DataWriter:
        """Open ``upload``'s data file for appending at its recorded offset.

        Raises :class:`Busy` if another writer holds it, ``FileNotFoundError`` if the data
        file is gone."""
        return DataWriter(upload.path, upload.offset, hasher)

    def _sync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class DataWriter:
    """One request's exclusive hold on a data file, from a recorded offset onwards.

    The hold is an ``flock`` on the open file: it excludes a second writer whether it is in
    this process or in another worker process sharing the directory. Opening truncates the
    file to ``start`` (the recorded offset), dropping any unacknowledged tail.
    """

    def __init__(self, path: Path, start: int, hasher: Hasher | None = None) -> None:
        self.start = start
        self.written = 0
        self._hasher = hasher
        self._file = open(path, "r+b", buffering=0)  # noqa: SIM115 - closed by close()
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise Busy(path.stem) from None
        try:
            self._file.truncate(start)
            self._file.seek(start)
        except OSError:
            self._file.close()
            raise

    @property
    def end(self) -> int:
        """Offset just past the last byte written (durable only after :meth:`sync`)."""
        return self.start + self.written

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            if not n:
                raise OSError("short write")
            view = view[n:]
        if self._hasher is not None:
            self._hasher.update(data)
        self.written += len(data)

    def sync(self) -> None:
        os.fsync(self._file.fileno())

    def rollback(self) -> None:
        """Drop everything written through this writer, durably."""
        self._file.truncate(self.start)
        os.fsync(self._file.fileno())
        self.written = 0

    def close(self) -> None:
        self._file.close()  # closing the file releases the flock
