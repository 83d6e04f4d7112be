"""An OCI image layout on disk (image-spec v1.1 image-layout.md): the appliance's image store.

Layout of a directory this class manages::

    oci-layout              {"imageLayoutVersion":"1.0.0"}
    index.json              image index: tags (ref.name annotations) and untagged referrers
    blobs/sha256/<hex>      content, named by its SHA-256
    .stella/lock            flock target serializing index.json writers
    .stella/manifests.json  manifest graph cache (referrers sidecar), rebuilt when stale
    .stella/tmp/            temporary files, renamed into place once verified

Every blob is hashed while it is written and lands under ``blobs/`` only if it matches;
``index.json`` is replaced atomically under an exclusive lock, so concurrent writers never lose
each other's updates. Layouts written by other tools (umoci, skopeo, ...) are read as they
are; ``.stella/`` is created on the first write. See docs/oci-layout.md.
"""

from __future__ import annotations

import contextlib
import errno
import io
import operator
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Final

from bundles import canonical
from bundles.bounded import Section
from bundles.digest import CHUNK, Digest, DigestReader
from bundles.errors import (
    BlobNotFoundError,
    CanonicalJSONError,
    DigestError,
    OCILayoutError,
    SizeLimitError,
)
from bundles.files import (
    FILE_MODE,
    Leftover,
    atomic_write,
    exclusive_lock,
    fsync_dir,
    owned_temp,
    stale_temporary,
    sync_files,
)
from bundles.oci.descriptor import Descriptor, DescriptorError, Platform
from bundles.oci.graph import Graph, Node, load_cache
from bundles.oci.manifest import (
    MAX_MANIFEST_SIZE,
    ImageIndex,
    StoredManifest,
    parse_manifest,
)
from bundles.oci.mediatypes import ANNOTATION_REF_NAME, INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX
from bundles.oci.sink import BlobSink

LAYOUT_VERSION: Final = "1.0.0"
OCTET_STREAM: Final = "application/octet-stream"
DEFAULT_BLOB_LIMIT: Final = 16 << 30  # the largest blob accepted unless a caller says otherwise
DEFAULT_READ_LIMIT: Final = 64 << 20  # the largest blob read into memory by read_blob
INDEX_LIMIT: Final = 64 << 20
_LAYOUT_FILE_LIMIT: Final = 64 << 10
UNOWNED_TMP_AGE: Final = 3600.0
"""Age after which a temporary file named after no writer (``atomic_write``'s) is stale."""
_PRIVATE_DIR: Final = ".stella"
_CACHE_FILE: Final = "manifests.json"
_CACHE_HEAD: Final = b'{"index":"'  # the graph cache's first field (bundles/oci/graph.py)
_NEAR: Final = 256
"""Manifests new to a graph this process holds that it reads itself rather than the cache file."""
_READ_ONLY_ERRNOS: Final = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})

# annotations.md: ref ::= component ("/" component)*; component ::= alphanum (separator alphanum)*
_COMPONENT: Final = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME: Final = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")


class NotALayoutError(OCILayoutError):
    """A directory is not an OCI image layout this code can read."""


class TagNotFoundError(OCILayoutError):
    """No descriptor in ``index.json`` carries the requested ``ref.name``."""


class PlatformNotFoundError(OCILayoutError):
    """An image index has no manifest for the requested platform."""


def check_tag(name: str) -> str:
    """Return ``name`` if it is a valid ``org.opencontainers.image.ref.name`` value."""
    if not isinstance(name, str) or not _REF_NAME.fullmatch(name):
        raise OCILayoutError(
            f"invalid tag {name!r}",
            hint="a tag is letters and digits separated by one of - . _ : @ + -- or /",
        )
    return name


@dataclass(frozen=True, slots=True)
class Reachability:
    """Blobs reachable from ``index.json``: manifests, their configs and layers, index
    children, and referrers (which the layout records in ``index.json`` itself)."""

    blobs: frozenset[Digest]
    missing: frozenset[Digest]


@dataclass(frozen=True, slots=True)
class BlobProblem:
    """One file under ``blobs/`` that is not what its name says."""

    path: Path
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of :meth:`OCILayout.verify`: every blob re-hashed, every reachable blob present."""

    checked: int
    bad: tuple[BlobProblem, ...]
    missing: tuple[Digest, ...]

    @property
    def ok(self) -> bool:
        return not self.bad and not self.missing


def _verified_raw(path: Path, digest: Digest, size: int, layout: Path) -> Section:
    """A blob file that checks size and digest when its end is reached."""

    def corrupt(actual: Digest, _size: int) -> DigestError:
        return DigestError(
            f"blob {digest} in {layout} is corrupt: its content hashes to {actual}",
            hint="run verify on the layout and copy the image again",
        )

    def short(got: int, _size: int) -> DigestError:
        return DigestError(
            f"blob {digest} in {layout} is corrupt: it ends after {got} of its {size} bytes",
            hint="run verify on the layout and copy the image again",
        )

    def grew(_got: int, _size: int) -> DigestError:
        return DigestError(
            f"blob {digest} in {layout} grew past its size {size} while being read",
            hint="run verify on the layout",
        )

    handle = open(path, "rb")  # noqa: SIM115 - closed with the section
    return Section(
        handle,
        size,
        expected=digest,
        mismatch=corrupt,
        short=short,
        long=grew,
        to_eof=True,
        close_source=True,
    )


class Staging:
    """Blobs of one image waiting to enter a layout (see :meth:`OCILayout.staging`)."""

    def __init__(self, layout: OCILayout) -> None:
        self._layout = layout
        self._pending: list[tuple[Path, Digest]] = []

    def put_blob(
        self,
        data: bytes | BinaryIO,
        *,
        expected: Digest | None = None,
        size: int | None = None,
        media_type: str = OCTET_STREAM,
        limit: int = DEFAULT_BLOB_LIMIT,
    ) -> Descriptor:
        """As :meth:`OCILayout.put_blob`, but the blob enters ``blobs/`` only with the others."""
        written = self._layout._write_blob(data, expected=expected, size=size, limit=limit)
        if isinstance(written, Descriptor):
            return Descriptor(media_type, written.digest, written.size)
        tmp, digest, length = written
        self._pending.append((tmp, digest))
        return Descriptor(media_type, digest, length)

    def has_blob(self, digest: Digest) -> bool:
        return self._layout.has_blob(digest) or any(d == digest for _, d in self._pending)

    def place(self) -> None:
        while self._pending:
            tmp, digest = self._pending.pop(0)
            try:
                self._layout.place_blob(tmp, digest)
            except BaseException:
                tmp.unlink(missing_ok=True)
                self.discard()
                raise

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()


_INDEX: dict[Path, tuple[bytes, dict[str, Any], tuple[Descriptor, ...]]] = {}
"""The ``index.json`` bytes this process last parsed or wrote, per layout directory, with
their document (never modified) and descriptors (checked)."""

_TAGGED: dict[Path, tuple[tuple[Descriptor, ...], dict[str, list[Descriptor]]]] = {}
"""Per layout directory, the tags of the descriptors :data:`_INDEX` holds (by identity)."""

_CANONICAL: dict[Path, bytes] = {}
"""Per layout directory, the ``index.json`` bytes this process wrote or checked to be canonical
JSON (compared by identity with the bytes :data:`_INDEX` holds): appending to them needs no
whole serialization."""


def _manifests_end(data: bytes, doc: dict[str, Any]) -> int | None:
    """Where the manifests array of ``doc`` ends in ``data`` (the offset of its ``]``), when
    ``data`` ends as ``doc``'s canonical bytes do (the keys sorted after ``manifests``, with
    their values) and the array holds an entry; else None."""
    if not doc["manifests"]:
        return None
    after = [k for k in sorted(doc) if k > "manifests"]
    end = b"".join(b"," + canonical.dumps(k) + b":" + canonical.dumps(doc[k]) for k in after)
    tail = b"]" + end + b"}"
    return len(data) - len(tail) if data.endswith(tail) else None


_GRAPH_FROM: dict[Path, tuple[Sequence[Descriptor], Graph]] = {}
"""Per layout directory, the graph this process last computed and the ``index.json``
descriptors it was computed from (a graph of those and appended ones reuses it)."""

_Stamp = tuple[int, int, int, int]

_GRAPHS: dict[Path, tuple[_Stamp, Graph]] = {}
"""The manifest graph this process last read from or wrote to a layout's graph cache file,
per layout directory, with the file's identity then (device, inode, size, modification time):
while the file is unchanged, an instance takes the graph from here instead of parsing the
file again (a store of thousands of referrers opens a layout per image it gates)."""


def _stamp(stat: os.stat_result) -> _Stamp:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(slots=True)
class _Batch:
    """What a :meth:`OCILayout.batch` block has stored: blobs written but not yet synced nor
    in ``blobs/`` (digest -> temporary file), referrers to list."""

    blobs: dict[Digest, Path]
    referrers: list[Descriptor]


class OCILayout:
    """An OCI image layout directory. Use :meth:`init` to create one, :meth:`open` to read one."""

    __slots__ = ("_batch", "_memo", "_reclaimed", "path")

    def __init__(self, path: Path) -> None:
        """Open the layout at ``path``, checking that it is one (same as :meth:`open`)."""
        self.path = Path(path)
        self._memo: Graph | None = None
        self._reclaimed = False
        self._batch: _Batch | None = None
        self._check()

    # ---------------------------------------------------------------- creation and opening

    @classmethod
    def open(cls, path: Path) -> OCILayout:
        return cls(path)

    @classmethod
    def init(cls, path: Path, *, exist_ok: bool = False) -> OCILayout:
        """Create an empty layout at ``path`` (the directory may exist but must be empty).

        With ``exist_ok``, an existing valid layout is opened instead.
        """
        path = Path(path)
        if (path / "oci-layout").exists():
            if exist_ok:
                return cls(path)
            raise OCILayoutError(
                f"{path} is already an OCI image layout", hint="open it instead of creating it"
            )
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise OCILayoutError(
                f"cannot create an OCI image layout in {path}: it is not an empty directory",
                hint="choose a new or empty directory",
            )
        try:
            (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            (path / _PRIVATE_DIR / "tmp").mkdir(parents=True, exist_ok=True)
            tmp = path / _PRIVATE_DIR / "tmp"
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
            atomic_write(path / "index.json", canonical.dumps(index), tmp_dir=tmp)
            # oci-layout last: a directory is a layout only once everything else is in place.
            layout = {"imageLayoutVersion": LAYOUT_VERSION}
            atomic_write(path / "oci-layout", canonical.dumps(layout), tmp_dir=tmp)
        except OSError as e:
            raise OCILayoutError(f"cannot create an OCI image layout in {path}: {e}") from e
        return cls(path)

    def _check(self) -> None:
        if not self.path.is_dir():
            raise NotALayoutError(
                f"{self.path} is not an OCI image layout: no such directory",
                hint="check the path, or create a layout first",
            )
        marker = self.path / "oci-layout"
        if not marker.is_file():
            raise NotALayoutError(
                f"{self.path} is not an OCI image layout: it has no oci-layout file",
                hint="check the path; an image layout holds oci-layout, index.json and blobs/",
            )
        try:
            doc = canonical.load_file(marker, limit=_LAYOUT_FILE_LIMIT)
        except (CanonicalJSONError, SizeLimitError) as e:
            raise NotALayoutError(f"{self.path} is not an OCI image layout: {e.message}") from e
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if version != LAYOUT_VERSION:
            raise NotALayoutError(
                f"{marker}: imageLayoutVersion is {version!r}, expected {LAYOUT_VERSION!r}",
                hint="this layout was written for a different version of the image-layout spec",
            )
        for name, is_ok in (("index.json", Path.is_file), ("blobs", Path.is_dir)):
            if not is_ok(self.path / name):
                raise NotALayoutError(
                    f"{self.path} is not a complete OCI image layout: {name} is missing",
                    hint="the layout was copied incompletely; copy it again",
                )

    def __repr__(self) -> str:
        return f"OCILayout({str(self.path)!r})"

    # ---------------------------------------------------------------- private paths

    def _private(self, *parts: str) -> Path:
        return self.path.joinpath(_PRIVATE_DIR, *parts)

    def _tmp_dir(self) -> Path:
        tmp = self._private("tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def _lock(self) -> AbstractContextManager[None]:
        self._private().mkdir(exist_ok=True)
        return exclusive_lock(self._private("lock"))

    # ---------------------------------------------------------------- blobs

    def blob_path(self, digest: Digest) -> Path:
        """Where the blob lives (whether or not it is there)."""
        return self.path / "blobs" / digest.algorithm / digest.encoded

    def _file(self, digest: Digest) -> Path:
        """The file holding the blob: its place in ``blobs/``, or, inside a :meth:`batch`
        block, the temporary file of a blob the block wrote (which enters ``blobs/`` when
        the block ends)."""
        if self._batch is not None:
            pending = self._batch.blobs.get(digest)
            if pending is not None:
                return pending
        return self.blob_path(digest)

    def has_blob(self, digest: Digest) -> bool:
        return self._file(digest).is_file()

    def _missing(self, digest: Digest) -> BlobNotFoundError:
        return BlobNotFoundError(
            f"blob {digest} is not in the OCI image layout {self.path}",
            hint="copy the image (with all its blobs) into the layout, or check the digest",
        )

    def blob_size(self, digest: Digest) -> int:
        try:
            return self._file(digest).stat().st_size
        except FileNotFoundError as e:
            raise self._missing(digest) from e

    def put_blob(
        self,
        data: bytes | BinaryIO,
        *,
        expected: Digest | None = None,
        size: int | None = None,
        media_type: str = OCTET_STREAM,
        limit: int = DEFAULT_BLOB_LIMIT,
    ) -> Descriptor:
        """Store a blob from bytes or a stream; returns its descriptor.

        The bytes are hashed while they are written to a temporary file in the layout, which is
        fsynced and renamed into ``blobs/`` only when the digest (``expected``, if given) and
        size (``size``, if given) match; otherwise :class:`DigestError` or
        :class:`SizeLimitError` is raised and nothing is left behind. ``limit`` always caps the
        bytes read. Storing a blob that is already present is a no-op.
        """
        stage = Staging(self)  # a stage of one blob, placed at once
        descriptor = stage.put_blob(
            data, expected=expected, size=size, media_type=media_type, limit=limit
        )
        stage.place()
        return descriptor

    def _write_blob(
        self,
        data: bytes | BinaryIO,
        *,
        expected: Digest | None,
        size: int | None,
        limit: int,
    ) -> Descriptor | tuple[Path, Digest, int]:
        """Write and verify a blob into a temporary file: (path, digest, size), not yet in
        ``blobs/``; or the descriptor of the blob already there."""
        if size is not None and (size < 0 or size > limit):
            raise SizeLimitError(
                f"blob of declared size {size} refused by {self.path}: the limit is {limit} bytes",
                hint="raise the limit only for inputs you expect to be this large",
            )
        if expected is None and isinstance(data, bytes) and len(data) <= limit:
            # known bytes: a blob already stored is not written, synced and dropped again
            expected = Digest.of_bytes(data)
        if expected is not None and self.has_blob(expected):
            existing = self.blob_size(expected)
            if size is not None and size != existing:
                raise SizeLimitError(
                    f"blob {expected} in {self.path} is {existing} bytes, but {size} were declared",
                    hint="the descriptor's size is wrong",
                )
            return Descriptor(OCTET_STREAM, expected, existing)
        stream: BinaryIO = io.BytesIO(data) if isinstance(data, bytes) else data
        reader = DigestReader(stream, expected=expected, size=size, limit=limit)
        fd, tmp = self.new_blob_file()
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    out.write(chunk)
                try:
                    digest = reader.check()
                except (DigestError, SizeLimitError) as e:
                    raise self.refused(e) from e
                out.flush()
                if self._batch is None:  # a batch syncs its blobs together when it ends
                    os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest, reader.size

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        """Blobs written and verified first, moved into ``blobs/`` together when the ``with``
        body ends without an error, all discarded when it raises: a refused image leaves no
        blob behind. (A process killed meanwhile leaves temporary files, which the next
        writer removes: see :meth:`leftovers`.)"""
        stage = Staging(self)
        try:
            yield stage
        except BaseException:
            stage.discard()
            raise
        stage.place()

    def new_blob_file(self) -> tuple[int, Path]:
        """A temporary file in the layout for a blob being written: (descriptor, path). The
        first one a process asks for removes what killed writers left (:meth:`leftovers`)."""
        tmp = self._tmp_dir()
        if not self._reclaimed:
            self._reclaimed = True
            self.leftovers(remove=True)
        return owned_temp(tmp, prefix="blob-")

    def leftovers(
        self, *, remove: bool = False, unowned_age: float = UNOWNED_TMP_AGE
    ) -> list[Leftover]:
        """Temporary files in ``.stella/tmp`` that no live process is writing (their writer
        was killed), and unowned ones older than ``unowned_age`` seconds; removed if asked."""
        return stale_temporary(self._private("tmp"), unowned_age=unowned_age, remove=remove)

    @property
    def where(self) -> str:
        """The layout's name in messages: its directory."""
        return str(self.path)

    def refused(self, error: DigestError | SizeLimitError) -> DigestError | SizeLimitError:
        """The error for a blob that did not match what was declared, naming the layout."""
        return type(error)(f"blob refused by {self.path}: {error.message}", hint=error.hint)

    def place_blob(self, tmp: Path, digest: Digest) -> None:
        """Move a written, synced and verified temporary file into ``blobs/`` (dropping it
        when the blob is already there), and make the rename durable. Inside a :meth:`batch`
        block the file waits (unsynced, when the block wrote it) until the block ends."""
        if self._batch is not None:
            if digest in self._batch.blobs or self.blob_path(digest).is_file():
                tmp.unlink()
            else:
                self._batch.blobs[digest] = tmp
            return
        target = self.blob_path(digest)
        if target.is_file():
            tmp.unlink()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.chmod(FILE_MODE)
        os.replace(tmp, target)
        fsync_dir(target.parent)

    def _settle(self, blobs: dict[Digest, Path]) -> None:
        """Make the blobs a batch wrote durable, then move them into ``blobs/`` and make the
        renames durable: every file is synced before any of them is renamed, and the
        files are synced together (the file system commits many syncs at once)."""
        if not blobs:
            return
        try:
            sync_files(list(blobs.values()))
        except BaseException:
            for tmp in blobs.values():
                tmp.unlink(missing_ok=True)
            blobs.clear()
            raise
        dirs: set[Path] = set()
        while blobs:
            digest, tmp = blobs.popitem()
            target = self.blob_path(digest)
            if target.is_file():
                tmp.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.chmod(FILE_MODE)
            try:
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                for left in blobs.values():
                    left.unlink(missing_ok=True)
                blobs.clear()
                raise
            dirs.add(target.parent)
        for directory in sorted(dirs):
            fsync_dir(directory)

    def blob_sink(
        self,
        *,
        expected: Digest,
        size: int,
        media_type: str = OCTET_STREAM,
        limit: int = DEFAULT_BLOB_LIMIT,
    ) -> BlobSink:
        """A writer for a blob of known digest and size whose chunks arrive from a stream the
        caller is busy with: hashed, written and synced on a background thread, moved into
        ``blobs/`` by :meth:`BlobSink.commit` only when digest and size match. Use it as a
        context manager: leaving without committing removes what was written."""
        return BlobSink(self, expected=expected, size=size, media_type=media_type, limit=limit)

    def open_blob(self, digest: Digest) -> BinaryIO:
        """Open a blob for streaming; reading to its end raises :class:`DigestError` if the
        content does not match ``digest``. Close it (or use ``with``)."""
        size = self.blob_size(digest)
        try:
            raw = _verified_raw(self._file(digest), digest, size, self.path)
        except FileNotFoundError as e:
            raise self._missing(digest) from e
        return io.BufferedReader(raw, CHUNK)

    def read_blob(self, digest: Digest, *, limit: int = DEFAULT_READ_LIMIT) -> bytes:
        """Read a whole blob into memory, verified; larger than ``limit`` raises
        :class:`SizeLimitError`."""
        size = self.blob_size(digest)
        if size > limit:
            raise SizeLimitError(
                f"blob {digest} in {self.path} is {size} bytes, over the read limit of {limit}",
                hint="stream it with open_blob instead",
            )
        with self.open_blob(digest) as fh:
            data = fh.read()
            fh.read()  # the end-of-blob read that checks the digest
        return data

    # ---------------------------------------------------------------- manifests

    def put_manifest(
        self, raw: bytes, media_type: str, *, check_references: bool = True
    ) -> Descriptor:
        """Store a manifest or index byte for byte; returns its descriptor.

        The descriptor carries ``artifactType`` (for a manifest with a ``subject`` but no
        ``artifactType``, its config's media type, as the referrers API reports it). With
        ``check_references`` every config, layer or child it names (except external ``urls``
        layers) must already be in the layout. A manifest with a ``subject`` is a referrer and
        is recorded in ``index.json`` as an untagged descriptor, so it stays reachable and
        :meth:`referrers` finds it.
        """
        manifest = parse_manifest(raw, media_type, source=f"manifest for {self.path}")
        if check_references:
            for child in manifest.children():
                if "urls" not in child.extra and not self.has_blob(child.digest):
                    raise BlobNotFoundError(
                        f"manifest refused by {self.path}: it names blob {child.digest} "
                        f"({child.media_type}), which is not in the layout",
                        hint="store configs, layers and child manifests before the manifest",
                    )
        artifact_type = manifest.artifact_type
        if artifact_type is None and manifest.subject is not None:
            artifact_type = manifest.effective_artifact_type
        stored = self.put_blob(raw, media_type=media_type, limit=MAX_MANIFEST_SIZE)
        descriptor = Descriptor(media_type, stored.digest, stored.size, artifact_type=artifact_type)
        if manifest.subject is not None:
            if self._batch is not None:
                self._batch.referrers.append(descriptor)
            else:
                self._add_referrers([descriptor])
        return descriptor

    def _add_referrers(self, descriptors: Sequence[Descriptor]) -> None:
        """List referrer manifests in ``index.json`` (those already listed once)."""

        def add(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            listed = {e.get("digest") for e in entries}
            added = []
            for d in descriptors:
                if str(d.digest) not in listed:
                    listed.add(str(d.digest))
                    added.append(d.to_dict())
            return [*entries, *added] if added else entries

        self._update_index(add)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Store many blobs and referrers with one ``index.json`` rewrite: inside the block,
        blobs are written and verified into temporary files (read back from there by this
        object), and when the block ends they are synced together, moved into ``blobs/``
        (their directory synced once), and only then are the referrer manifests listed in
        ``index.json``, together: ``index.json`` never names a blob that is not durable. A
        block left by an error lists nothing: what it stored is unreferenced, as after a
        writer killed before listing (a writer killed inside the block leaves temporary files
        only, which the next writer removes). Referrers stored inside the block are not yet
        found by :meth:`referrers`."""
        if self._batch is not None:  # nested: the outer block lists everything
            yield
            return
        batch = self._batch = _Batch({}, [])
        try:
            yield
        except BaseException:
            self._batch = None
            with contextlib.suppress(OSError):  # the error that left the block is the one told
                self._settle(batch.blobs)
            raise
        self._batch = None
        self._settle(batch.blobs)
        if batch.referrers:
            self._add_referrers(batch.referrers)

    def get_manifest(
        self, ref: Digest | Descriptor, media_type: str | None = None
    ) -> StoredManifest:
        """Read a manifest or index: exact bytes (digest-verified) plus a parsed view.

        Given a descriptor, its media type and size must match the content; given a bare
        digest, the type comes from ``media_type`` or the document itself.
        """
        if isinstance(ref, Descriptor):
            digest, media_type = ref.digest, ref.media_type
        else:
            digest = ref
        raw = self.read_blob(digest, limit=MAX_MANIFEST_SIZE)
        if isinstance(ref, Descriptor) and ref.size != len(raw):
            raise DescriptorError(
                f"descriptor of {digest} says size {ref.size}, the blob in {self.path} is "
                f"{len(raw)} bytes",
                hint="the descriptor is wrong; take it from the layout's index.json",
            )
        manifest = parse_manifest(raw, media_type, source=f"{self.path} blob {digest}")
        descriptor = (
            ref
            if isinstance(ref, Descriptor)
            else Descriptor(
                manifest.media_type, digest, len(raw), artifact_type=manifest.artifact_type
            )
        )
        return StoredManifest(descriptor=descriptor, raw=raw, manifest=manifest)

    def walk(self, descriptor: Descriptor) -> Iterator[StoredManifest]:
        """Depth-first, parents first: the manifest or index at ``descriptor`` and, for an
        index, every manifest and index below it. A missing child raises
        :class:`BlobNotFoundError`."""
        seen: set[Digest] = set()
        stack = [descriptor]
        while stack:
            current = stack.pop()
            if current.digest in seen:
                continue
            seen.add(current.digest)
            stored = self.get_manifest(current)
            yield stored
            if isinstance(stored.manifest, ImageIndex):
                stack.extend(
                    c
                    for c in reversed(stored.manifest.manifests)
                    if c.media_type in MANIFEST_TYPES | INDEX_TYPES
                )

    def resolve_platform(
        self,
        descriptor: Descriptor,
        *,
        os: str = "linux",
        architecture: str = "amd64",
        variant: str | None = None,
    ) -> Descriptor:
        """The image manifest for one platform: ``descriptor`` itself if it is a manifest,
        else the first matching entry found walking the index (nested indexes included)."""
        if descriptor.media_type in MANIFEST_TYPES:
            return descriptor
        available: list[str] = []
        for stored in self.walk(descriptor):
            if not isinstance(stored.manifest, ImageIndex):
                continue
            for child in stored.manifest.manifests:
                if child.media_type not in MANIFEST_TYPES or child.platform is None:
                    continue
                if child.platform.matches(os, architecture, variant):
                    return child
                available.append(str(child.platform))
        wanted = str(Platform(architecture=architecture, os=os, variant=variant))
        raise PlatformNotFoundError(
            f"image index {descriptor.digest} in {self.path} has no manifest for {wanted}",
            hint=f"available platforms: {', '.join(available) or 'none'}",
        )

    # ---------------------------------------------------------------- index.json and tags

    def _index_bytes(self) -> bytes:
        path = self.path / "index.json"
        try:
            data = path.read_bytes() if path.stat().st_size <= INDEX_LIMIT else None
        except OSError as e:
            raise OCILayoutError(f"{path}: cannot read: {e.strerror}") from e
        if data is None:
            raise SizeLimitError(f"{path} is over the size limit of {INDEX_LIMIT} bytes")
        return data

    def _read_index(self, data: bytes | None = None) -> tuple[bytes, dict[str, Any]]:
        path = self.path / "index.json"
        if data is None:
            data = self._index_bytes()
        try:
            doc = canonical.loads(data, limit=INDEX_LIMIT, source=str(path))
        except CanonicalJSONError as e:
            raise OCILayoutError(e.message, hint="the layout's index.json is damaged") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            raise OCILayoutError(
                f"{path}: not an image index (no 'manifests' array)",
                hint="the layout's index.json is damaged",
            )
        if doc.get("schemaVersion") != 2:
            raise OCILayoutError(
                f"{path}: schemaVersion is {doc.get('schemaVersion')!r}, expected 2"
            )
        return data, doc

    def _descriptors(self, doc: dict[str, Any]) -> tuple[Descriptor, ...]:
        return tuple(
            Descriptor.from_dict(entry, source=f"{self.path / 'index.json'} manifests[{i}]")
            for i, entry in enumerate(doc["manifests"])
        )

    def entries(self) -> tuple[Descriptor, ...]:
        """Every descriptor in ``index.json``, tagged or not, in file order. The bytes are read
        each time; they are parsed again only when they changed since this process last parsed
        or wrote this layout's ``index.json`` (a store of thousands of images and their
        referrers is resolved once per image by a rescan)."""
        return self._parsed(self._index_bytes())[1]

    def _parsed(self, data: bytes) -> tuple[dict[str, Any], tuple[Descriptor, ...]]:
        """The document and descriptors of the ``index.json`` bytes ``data``: parsed and
        checked, or as this process last did that for the same bytes. The document is shared:
        never modify it."""
        known = _INDEX.get(self.path)
        if known is not None and known[0] == data:
            return known[1], known[2]
        grown = self._appended(known, data) if known is not None else None
        if grown is not None:
            _INDEX[self.path] = grown
            return grown[1], grown[2]
        doc = self._read_index(data)[1]
        found = self._descriptors(doc)
        _INDEX[self.path] = (data, doc, found)
        return doc, found

    def _appended(
        self, known: tuple[bytes, dict[str, Any], tuple[Descriptor, ...]], data: bytes
    ) -> tuple[bytes, dict[str, Any], tuple[Descriptor, ...]] | None:
        """``data`` parsed as the canonical ``index.json`` ``known`` holds with entries
        appended to its manifests (as every writer of the appliance adds referrers): the same
        bytes up to the end of the old array, then a comma, the new entries and the same end.
        Only the new entries are parsed and checked; None when ``data`` is anything else
        (then the whole file is parsed)."""
        old, doc, found = known
        cut = _manifests_end(old, doc)
        if cut is None or len(data) <= len(old):
            return None
        tail = len(old) - cut  # the array's end and what follows it
        if not (
            data.endswith(old[cut:]) and data[cut : cut + 1] == b"," and data.startswith(old[:cut])
        ):
            return None
        where = self.path / "index.json"
        array = b"[" + data[cut + 1 : len(data) - tail] + b"]"
        try:  # the new entries as one array: valid there exactly when valid in the file
            added = canonical.loads(array, limit=INDEX_LIMIT, source=str(where))
        except CanonicalJSONError:
            return None
        if not isinstance(added, list):
            return None
        first = len(found)
        descriptors = found + tuple(
            Descriptor.from_dict(entry, source=f"{where} manifests[{first + i}]")
            for i, entry in enumerate(added)
        )
        if _CANONICAL.get(self.path) is old and canonical.dumps(added) == array:
            _CANONICAL[self.path] = data  # canonical bytes and canonical entries appended
        return data, {**doc, "manifests": [*doc["manifests"], *added]}, descriptors

    def _update_index(self, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        """Read-modify-write ``index.json`` under the layout lock; unknown fields are kept.

        ``change`` returns the new entries: the ones it keeps are the very objects it was
        given, unmodified, and their descriptors (checked when the index was read) are not
        checked again; only the entries it adds are."""
        with self._lock():
            if self._batch is not None:  # inside a batch (a tag, say): what index.json is
                self._settle(self._batch.blobs)  # to name must be durable first, as always
            data = self._index_bytes()
            doc, checked = self._parsed(data)  # refuse to rewrite a damaged index
            before = doc["manifests"]
            entries = change(list(before))
            descriptors = checked
            if entries != before:
                where = self.path / "index.json"
                n = len(before)
                if len(entries) > n and all(map(operator.is_, before, entries)):
                    # entries appended (how referrers are added): only they are checked and
                    # serialized, and spliced into the canonical bytes of the rest
                    descriptors = checked + tuple(
                        Descriptor.from_dict(e, source=f"{where} manifests[{n + i}]")
                        for i, e in enumerate(entries[n:])
                    )
                    spliced = self._spliced(data, doc, entries[n:])
                else:
                    kept = {id(e): d for e, d in zip(before, checked, strict=True)}
                    descriptors = tuple(
                        kept.get(id(e)) or Descriptor.from_dict(e, source=f"{where} manifests[{i}]")
                        for i, e in enumerate(entries)
                    )
                    spliced = None
                doc = {**doc, "manifests": entries}
                data = spliced if spliced is not None else canonical.dumps(doc)
                atomic_write(where, data, tmp_dir=self._tmp_dir())
                _INDEX[self.path] = (data, doc, descriptors)
                _CANONICAL[self.path] = data
            self._refresh_graph(data, descriptors, persist=True)

    def _spliced(
        self, data: bytes, doc: dict[str, Any], added: list[dict[str, Any]]
    ) -> bytes | None:
        """The canonical bytes of ``doc`` (whose canonical bytes are ``data``) with ``added``
        appended to its manifests: ``data`` up to the end of the array, then the new entries,
        then the same end; None when ``data`` is not known to be canonical or holds no entry
        (then the whole document is serialized)."""
        cut = _manifests_end(data, doc)
        if cut is None:
            return None
        held = _INDEX[self.path][0]  # the object equal to ``data`` that _parsed keeps
        if _CANONICAL.get(self.path) is not held:
            if canonical.dumps(doc) != data:  # written by another tool: rewritten whole
                return None
            _CANONICAL[self.path] = held  # checked once; each append keeps it so
        return data[:cut] + b"," + canonical.dumps(added)[1:-1] + data[cut:]

    def tag(self, name: str, descriptor: Descriptor) -> Descriptor:
        """Point tag ``name`` at ``descriptor`` (replacing any previous target); returns the
        descriptor as written to ``index.json``."""
        check_tag(name)
        size = self.blob_size(descriptor.digest)
        if size != descriptor.size:
            raise DescriptorError(
                f"cannot tag {name!r}: descriptor says {descriptor.digest} is "
                f"{descriptor.size} bytes, the blob in {self.path} is {size}",
            )
        tagged = descriptor.with_annotations({**descriptor.annotations, ANNOTATION_REF_NAME: name})

        def retag(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [e for e in entries if _ref_name(e) != name]
            return [*kept, tagged.to_dict()]

        self._update_index(retag)
        return tagged

    def untag(self, name: str) -> Descriptor:
        """Remove tag ``name``; returns the descriptor it pointed at. The blobs stay."""
        removed: list[dict[str, Any]] = []

        def drop(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            removed[:] = [e for e in entries if _ref_name(e) == name]
            return [e for e in entries if _ref_name(e) != name]

        self._update_index(drop)
        if not removed:
            raise self._no_tag(name)
        return Descriptor.from_dict(removed[-1], source=f"{self.path / 'index.json'} tag {name}")

    def _no_tag(self, name: str) -> TagNotFoundError:
        return TagNotFoundError(
            f"tag {name!r} is not in the OCI image layout {self.path}",
            hint=f"known tags: {', '.join(self.tags()) or 'none'}",
        )

    def tags(self) -> dict[str, Descriptor]:
        """Tag name -> descriptor, sorted by name."""
        found: dict[str, Descriptor] = {}
        for entry in self.entries():
            if entry.ref_name is not None:
                found[entry.ref_name] = entry
        return dict(sorted(found.items()))

    def resolve(self, reference: str) -> Descriptor:
        """The descriptor for a tag, or for ``sha256:<hex>`` (a manifest in the layout).

        A tag that names different manifests in ``index.json`` (other tools may write such a
        file) is refused rather than guessed.
        """
        if reference.startswith("sha256:"):
            digest = Digest.parse(reference)
            for entry in self.entries():
                if entry.digest == digest:
                    return entry
            node = self.graph().nodes.get(digest)
            if node is not None:
                return node.descriptor
            return self.get_manifest(digest).descriptor
        check_tag(reference)
        matches = self._tagged(self.entries()).get(reference, [])
        if not matches:
            raise self._no_tag(reference)
        if len({e.digest for e in matches}) > 1:
            raise OCILayoutError(
                f"tag {reference!r} names {len(matches)} different manifests in "
                f"{self.path / 'index.json'}",
                hint="retag it to the intended manifest",
            )
        return matches[-1]

    def _tagged(self, entries: tuple[Descriptor, ...]) -> dict[str, list[Descriptor]]:
        """Tag name -> the entries naming it, in file order, for these very ``entries`` (made
        once per parsed ``index.json``: a rescan resolves thousands of tags in one)."""
        known = _TAGGED.get(self.path)
        if known is not None and known[0] is entries:
            return known[1]
        tagged: dict[str, list[Descriptor]] = {}
        for entry in entries:
            if entry.ref_name is not None:
                tagged.setdefault(entry.ref_name, []).append(entry)
        _TAGGED[self.path] = (entries, tagged)
        return tagged

    # ---------------------------------------------------------------- graph and referrers

    def _scan(self, descriptor: Descriptor) -> Node:
        stored = self.get_manifest(descriptor)
        return Node.of(stored.descriptor, stored.manifest)

    def _refresh_graph(
        self,
        data: bytes,
        descriptors: Sequence[Descriptor],
        *,
        persist: bool,
        reuse: bool = True,
    ) -> tuple[Graph, bool]:
        """The graph for this ``index.json``, reusing cached nodes (manifests are immutable);
        the flag says whether it was computed now rather than found in a cache."""
        index_digest = Digest.of_bytes(data)
        cached: dict[Digest, Node] = {}
        if reuse:
            # A process that holds a graph brings it up to date itself when few manifests are
            # new to it (each is read once; manifests never change), rather than parse the
            # whole file another process may have rewritten meanwhile.
            memo = self._memo
            near = memo is not None and sum(
                1 for d in descriptors if d.digest not in memo.nodes
            ) <= max(_NEAR, len(memo.nodes) // 8)
            for known in self._cached_graphs(read=not near):
                if known.index_digest == index_digest:
                    self._memo = known
                    return known, False
                cached.update(known.nodes)
        nodes: dict[Digest, Node] = {}
        missing: set[Digest] = set()
        walkable = MANIFEST_TYPES | INDEX_TYPES
        walk = descriptors
        # reuse=False reads every manifest again: the graph held here is not trusted either
        grown = self._grown_from(descriptors) if reuse else None
        if grown is not None:  # the held graph's entries and more: only the new ones walked
            nodes.update(grown.nodes)
            missing.update(grown.missing)
            walk = descriptors[len(_GRAPH_FROM[self.path][0]) :]
        stack = [d for d in reversed(walk) if d.media_type in walkable]
        while stack:
            current = stack.pop()
            if current.digest in nodes or current.digest in missing:
                continue
            node = cached.get(current.digest)
            if node is None:
                if not self.has_blob(current.digest):
                    missing.add(current.digest)
                    continue
                node = self._scan(current)
            nodes[current.digest] = node
            stack.extend(c for c in reversed(node.children) if c.media_type in walkable)
        graph = Graph(
            index_digest=index_digest, nodes=MappingProxyType(nodes), missing=frozenset(missing)
        )
        self._memo = graph
        _GRAPH_FROM[self.path] = (descriptors, graph)
        if persist:
            self._save_graph(graph)
        return graph, True

    def _grown_from(self, descriptors: Sequence[Descriptor]) -> Graph | None:
        """The graph this process last computed for this layout, when ``descriptors`` begin
        with the very descriptors it was computed from (``index.json`` grew by appended
        entries) and nothing it found missing has appeared since; else None."""
        known = _GRAPH_FROM.get(self.path)
        if known is None:
            return None
        before, graph = known
        if len(before) > len(descriptors) or not all(map(operator.is_, before, descriptors)):
            return None
        if any(self.has_blob(d) for d in graph.missing):
            return None
        return graph

    def _cached_graphs(self, *, read: bool = True) -> Iterator[Graph]:
        """The in-memory graph, then the one on disk (which another process may have
        refreshed; not read again when ``read`` is false, only taken when this process last
        read or wrote it); callers stop at the first that matches the current ``index.json``."""
        if self._memo is not None:
            yield self._memo
        known = _GRAPHS.get(self.path)
        try:
            with self._private(_CACHE_FILE).open("rb") as f:
                stamp = _stamp(os.fstat(f.fileno()))
                same = known is not None and known[0] == stamp
                data = None if same or not read else f.read()
        except OSError:
            return
        if same and known is not None:  # the file this process last read or wrote
            yield known[1]
            return
        if data is None:
            return
        graph = load_cache(data or b"")
        if graph is not None:
            _GRAPHS[self.path] = (stamp, graph)
            yield graph

    def _saved_index(self) -> Digest | None:
        """The ``index.json`` digest the graph cache on disk was made from (its first field),
        read without parsing the rest; None when there is no readable one."""
        try:
            with self._private(_CACHE_FILE).open("rb") as f:
                head = f.read(len(_CACHE_HEAD) + 80)
        except OSError:
            return None
        if not head.startswith(_CACHE_HEAD):
            return None
        try:
            return Digest.parse(head[len(_CACHE_HEAD) :].split(b'"', 1)[0].decode("ascii"))
        except (DigestError, UnicodeDecodeError):
            return None

    def _save_graph(self, graph: Graph) -> None:
        path = self._private(_CACHE_FILE)
        try:
            atomic_write(path, graph.to_bytes(), tmp_dir=self._tmp_dir())
            _GRAPHS[self.path] = (_stamp(path.stat()), graph)  # written under the lock
        except OSError as e:
            if e.errno not in _READ_ONLY_ERRNOS:
                raise OCILayoutError(
                    f"cannot write the manifest graph cache of {self.path}: {e}"
                ) from e
            # A read-only layout stays fully readable; the graph is recomputed per process.

    def graph(self, *, reuse: bool = True) -> Graph:
        """The manifest graph of the current ``index.json``: from the cache when it was computed
        from these exact ``index.json`` bytes, else refreshed (and the cache rewritten, if the
        layout is writable). ``reuse=False`` re-reads every manifest."""
        data = self._index_bytes()
        memo = self._memo
        if reuse and memo is not None and memo.index_digest == Digest.of_bytes(data):
            return memo  # made by this object from these very bytes, checked then
        graph, computed = self._refresh_graph(
            data, self._parsed(data)[1], persist=False, reuse=reuse
        )
        if not computed:
            return graph
        try:
            with self._lock():
                current = self._index_bytes()
                # another process may have saved a graph of this index meanwhile: not written
                # twice (a graph rebuilt from the manifests, reuse=False, replaces it)
                if current == data and (not reuse or self._saved_index() != graph.index_digest):
                    self._save_graph(graph)
        except OSError as e:
            if e.errno not in _READ_ONLY_ERRNOS:
                raise
        return graph

    def referrers(self, subject: Digest, *, artifact_type: str | None = None) -> list[Descriptor]:
        """Manifests in the layout whose ``subject`` is ``subject``, as the distribution-spec
        referrers API lists them (artifactType, annotations of the manifest), sorted by digest;
        with ``artifact_type``, only those of that type."""
        return [
            node.referrer()
            for node in self.graph().referrers(subject)
            if artifact_type is None or node.artifact_type == artifact_type
        ]

    def reachable(self) -> Reachability:
        """Every blob reachable from ``index.json``, and those of them not in the layout."""
        graph = self.graph()
        blobs: set[Digest] = {e.digest for e in self.entries()}
        for node in graph.nodes.values():
            blobs.add(node.descriptor.digest)
            blobs.update(c.digest for c in node.children)
        missing = frozenset(d for d in blobs if not self.has_blob(d))
        return Reachability(blobs=frozenset(blobs), missing=missing)

    def verify(self) -> VerifyReport:
        """Re-hash every blob; report files whose content does not match their name, files
        that are not blobs, and reachable blobs that are missing."""
        bad: list[BlobProblem] = []
        checked = 0
        blobs_dir = self.path / "blobs"
        for algorithm_dir in sorted(blobs_dir.iterdir()):
            if algorithm_dir.name != "sha256" or not algorithm_dir.is_dir():
                bad.append(BlobProblem(algorithm_dir, "not a sha256 blob directory"))
                continue
            for path in sorted(algorithm_dir.iterdir()):
                checked += 1
                try:
                    expected = Digest(path.name)
                except DigestError:
                    bad.append(BlobProblem(path, "file name is not a sha256 digest"))
                    continue
                try:
                    actual, _ = Digest.of_file(path)
                except OSError as e:
                    bad.append(BlobProblem(path, f"cannot read: {e.strerror}"))
                    continue
                if actual != expected:
                    bad.append(BlobProblem(path, f"content hashes to {actual}"))
        cache_file = self._private(_CACHE_FILE)
        cached = load_cache(cache_file.read_bytes()) if cache_file.is_file() else None
        fresh = self.graph(reuse=False)
        if (
            cached is not None
            and cached.index_digest == fresh.index_digest
            and dict(cached.nodes) != dict(fresh.nodes)
        ):
            bad.append(
                BlobProblem(
                    cache_file,
                    "manifest graph cache disagreed with the manifests; it was rebuilt",
                )
            )
        missing = tuple(sorted(self.reachable().missing))
        return VerifyReport(checked=checked, bad=tuple(bad), missing=missing)


def _ref_name(entry: dict[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    if isinstance(annotations, dict):
        value = annotations.get(ANNOTATION_REF_NAME)
        return value if isinstance(value, str) else None
    return None
