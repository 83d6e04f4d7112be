"""Helpers for the OCI layout tests: external-tool lookup and small images built in memory."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from bundles import canonical
from bundles.digest import Digest
from bundles.oci import Descriptor, OCILayout
from bundles.oci.mediatypes import (
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)

SKIP_ENV = "STELLA_ALLOW_SKIP"


def require_tool(name: str) -> str:
    """The path of external tool ``name``; a missing tool fails the test unless skipping is
    explicitly allowed, so the tool-backed tests cannot vanish silently from a run."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = (
        f"required tool {name!r} is not installed (not found on PATH); tests marked 'tools' "
        f"need it. Fix: run `make test`, which sets up the test tools, or set {SKIP_ENV}=1 "
        "to skip these tests"
    )
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(message)
    pytest.fail(message)


def run(*argv: str, cwd: Path | None = None) -> str:
    """Run a tool; a failure shows its stderr in the test report."""
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def make_tar(files: dict[str, bytes]) -> bytes:
    """A reproducible tar (fixed mtimes and owners) holding ``files`` and their parent dirs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(p) for name in files for p in Path(name).parents if str(p) != "."})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass(frozen=True)
class BuiltImage:
    manifest: Descriptor
    config: Descriptor
    layer: Descriptor
    diff_id: Digest
    raw_manifest: bytes


def build_image(
    layout: OCILayout,
    files: dict[str, bytes],
    *,
    tag: str | None = None,
    architecture: str = "amd64",
) -> BuiltImage:
    """One gzip tar layer, a config with the matching diff_id, and a manifest."""
    tar = make_tar(files)
    gz = gzip.compress(tar, mtime=0)
    layer = layout.put_blob(
        gz, expected=Digest.of_bytes(gz), size=len(gz), media_type=OCI_LAYER_GZIP
    )
    diff_id = Digest.of_bytes(tar)
    config_doc = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [str(diff_id)]},
        "history": [{"created_by": "stella test fixture"}],
    }
    config = layout.put_blob(canonical.dumps(config_doc), media_type=OCI_CONFIG)
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_dict(),
        "layers": [layer.to_dict()],
    }
    raw = canonical.dumps(manifest_doc)
    manifest = layout.put_manifest(raw, OCI_MANIFEST)
    if tag is not None:
        layout.tag(tag, manifest)
    return BuiltImage(manifest, config, layer, diff_id, raw)


def attach(
    layout: OCILayout,
    subject: Descriptor,
    payload: bytes,
    *,
    artifact_type: str | None,
    layer_type: str = "application/vnd.dev.sigstore.bundle.v0.3+json",
    config_type: str = OCI_EMPTY,
    annotations: dict[str, str] | None = None,
) -> Descriptor:
    """Store a referrer of ``subject`` the way cosign v3 attaches a Sigstore bundle."""
    layer = layout.put_blob(payload, media_type=layer_type)
    config = (
        layout.put_blob(EMPTY_JSON, media_type=OCI_EMPTY)
        if config_type == OCI_EMPTY
        else layout.put_blob(b'{"kind":"config"}', media_type=config_type)
    )
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_dict(),
        "layers": [layer.to_dict()],
        "subject": subject.bare().to_dict(),
    }
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    if annotations:
        doc["annotations"] = annotations
    return layout.put_manifest(canonical.dumps(doc), OCI_MANIFEST)
