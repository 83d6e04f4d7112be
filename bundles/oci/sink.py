"""A blob written on a background thread while its producer goes on.

Importing a bundle, the main thread decompresses the stream and hashes each member; storing
a large image layer on the same thread would add the layout's own hash, the write and the
fsync to that, one after the other. A :class:`BlobSink` takes the chunks through a small
bounded queue (memory stays at a few chunks whatever the blob's size) and hashes, writes and
syncs them on its own thread: SHA-256, file writes and zstd all release the GIL, so on two
cores the store costs little more than the decompression.

The sink verifies by itself, as :meth:`OCILayout.put_blob` does: nothing appears in ``blobs/``
until :meth:`BlobSink.commit` has compared digest and size, and leaving the ``with`` block
without committing (an error upstream, a digest mismatch) removes the temporary file.

:meth:`BlobSink.end` hands over the end of the blob without waiting: the writer flushes and
syncs it while the producer goes on with the rest of its stream (the disk is often slower than
decompression; an import loads the knowledge store meanwhile), and :meth:`BlobSink.commit`
later waits for it, checks it and moves it into place.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Final, Protocol

from bundles.digest import Digest, Hasher
from bundles.errors import DigestError, SizeLimitError
from bundles.oci.descriptor import Descriptor

DEPTH: Final = 8  # chunks waiting for the writer (1 MiB each from a bundle member)


class BlobPlace(Protocol):
    """Where a sink's blob goes: the layout that made the sink (:meth:`OCILayout.blob_sink`)."""

    @property
    def where(self) -> str:
        """The store's name in messages."""
        ...

    def new_blob_file(self) -> tuple[int, Path]:
        """A temporary file for the blob being written: (descriptor, path)."""
        ...

    def place_blob(self, tmp: Path, digest: Digest) -> None:
        """Move the written, synced and verified temporary file into place."""
        ...

    def refused(self, error: DigestError | SizeLimitError) -> DigestError | SizeLimitError:
        """The error to raise for a blob that did not match, naming the store."""
        ...


class BlobSink:
    """Stores one blob of known digest and size from chunks handed to :meth:`write`."""

    def __init__(
        self, layout: BlobPlace, *, expected: Digest, size: int, media_type: str, limit: int
    ) -> None:
        if size < 0 or size > limit:
            raise SizeLimitError(
                f"blob of declared size {size} refused by {layout.where}: the limit is "
                f"{limit} bytes",
                hint="raise the limit only for inputs you expect to be this large",
            )
        self._layout = layout
        self.expected = expected
        self.size = size
        self.media_type = media_type
        self._hasher = Hasher(limit=size)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)
        self._error: BaseException | None = None
        self._sync = False
        self._closed = False  # no more chunks will come
        self._settled = False  # committed, or discarded with its temporary file
        fd, self._tmp = layout.new_blob_file()
        self._thread = threading.Thread(target=self._run, args=(fd,), name="blob-sink")
        self._thread.start()

    def __enter__(self) -> BlobSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._settled:
            self._sync = False  # a blob being discarded need not reach the disk
            self._close(sync=False)
            self._thread.join()
            self._tmp.unlink(missing_ok=True)
            self._settled = True

    def _run(self, fd: int) -> None:
        # Drain the queue to its end whatever happens, so the producer never blocks forever.
        try:
            out = os.fdopen(fd, "wb")
        except BaseException as e:  # pragma: no cover - fdopen of a fresh descriptor
            os.close(fd)
            self._error, out = e, None
        while (chunk := self._queue.get()) is not None:
            if self._error is None and out is not None:
                try:
                    self._hasher.update(chunk)
                    out.write(chunk)
                except BaseException as e:
                    self._error = e
        if out is not None:
            try:
                if self._error is None and self._sync:
                    out.flush()
                    os.fsync(out.fileno())
                out.close()
            except BaseException as e:
                self._error = self._error or e

    def write(self, chunk: bytes) -> None:
        """Hand over the next chunk (blocks while the writer is :data:`DEPTH` chunks behind)."""
        if self._closed:
            raise ValueError("write to a finished blob sink")
        self._queue.put(chunk)

    def _close(self, *, sync: bool) -> None:
        if not self._closed:
            self._sync = sync  # read by the writer only after it takes the end marker
            self._closed = True
            self._queue.put(None)

    def end(self) -> None:
        """No more chunks: the writer flushes and syncs the blob on its own thread while the
        caller goes on. :meth:`commit` (or leaving the ``with`` block) must still follow."""
        self._close(sync=True)

    def commit(self) -> Descriptor:
        """Wait for the writer, check digest and size, and move the blob into place."""
        if self._settled:
            raise ValueError("commit of a finished blob sink")
        self._close(sync=True)
        self._thread.join()
        self._settled = True
        try:
            if self._error is not None:
                raise self._error
            actual = self._hasher.check(expected=self.expected, size=self.size)
            self._layout.place_blob(self._tmp, actual)
        except (DigestError, SizeLimitError) as e:
            self._tmp.unlink(missing_ok=True)
            raise self._layout.refused(e) from e
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return Descriptor(self.media_type, actual, self.size)
