"""Registries for the image-mirroring tests: Debian's real ``docker-registry`` on loopback,
small images built with ``bundles.oci`` and pushed with ``skopeo``, and a fake registry in
``http.server`` for failure injection (corrupt blobs, cut connections) and auth corners.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import re
import secrets
import socket
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from bundles import canonical
from bundles.digest import Digest
from bundles.oci import Descriptor, OCILayout, Platform
from bundles.oci.mediatypes import (
    EMPTY_JSON,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE_V03,
)
from tests.loopback import LoopbackHTTP

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
IDENTITY_HEADER = "X-Stella-Test-Registry"
START_ATTEMPTS = 5
SPDX_JSON = "application/spdx+json"


def free_port() -> int:
    """A port no socket holds right now. Another process may take it before the caller
    binds it: whoever starts a server on it checks that the server answering is its own."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment for tools talking to loopback: no proxies."""
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


# ------------------------------------------------------------------------------ images


def make_layer(files: dict[str, bytes], *, level: int = 6) -> tuple[bytes, Digest]:
    """A gzip'd reproducible tar of ``files``; returns (gzip bytes, diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=level, mtime=0), Digest.of_bytes(raw)


def build_image(
    layout: OCILayout,
    layers: list[dict[str, bytes]],
    *,
    arch: str = "amd64",
    os_name: str = "linux",
    variant: str | None = None,
    level: int = 6,
) -> Descriptor:
    """An OCI image manifest with the given layers, stored in ``layout`` (untagged)."""
    layer_descs = []
    diff_ids = []
    for files in layers:
        blob, diff_id = make_layer(files, level=level)
        layer_descs.append(layout.put_blob(blob, media_type=OCI_LAYER_GZIP))
        diff_ids.append(str(diff_id))
    config: dict[str, Any] = {
        "architecture": arch,
        "os": os_name,
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if variant:
        config["variant"] = variant
    config_desc = layout.put_blob(canonical.dumps(config), media_type=OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_dict(),
        "layers": [d.to_dict() for d in layer_descs],
    }
    stored = layout.put_manifest(canonical.dumps(manifest), OCI_MANIFEST)
    platform = Platform(architecture=arch, os=os_name, variant=variant)
    return Descriptor(stored.media_type, stored.digest, stored.size, platform=platform)


def build_index(layout: OCILayout, manifests: list[Descriptor]) -> Descriptor:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [d.to_dict() for d in manifests],
    }
    return layout.put_manifest(canonical.dumps(index), OCI_INDEX)


def artifact_manifest(
    subject: Descriptor | None,
    payload: bytes,
    payload_type: str,
    *,
    artifact_type: str | None,
    annotations: dict[str, str] | None = None,
) -> tuple[bytes, dict[str, bytes]]:
    """An OCI 1.1 artifact manifest (empty config, one layer); returns its bytes and the
    blobs it needs (digest string -> bytes)."""
    layer_digest = Digest.of_bytes(payload)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": str(Digest.of_bytes(EMPTY_JSON)), "size": 2},
        "layers": [
            {
                "mediaType": payload_type,
                "digest": str(layer_digest),
                "size": len(payload),
                **({"annotations": annotations} if annotations else {}),
            }
        ],
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = {
            "mediaType": subject.media_type,
            "digest": str(subject.digest),
            "size": subject.size,
        }
    doc["annotations"] = {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    blobs = {str(Digest.of_bytes(EMPTY_JSON)): EMPTY_JSON, str(layer_digest): payload}
    return canonical.dumps(doc), blobs


def cosign_signature(subject: Digest) -> tuple[bytes, dict[str, bytes]]:
    """A cosign-style ``.sig`` manifest (simple-signing payload, signature annotation)."""
    payload = canonical.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "example/app"},
                "image": {"docker-manifest-digest": str(subject)},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    config = canonical.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers"}})
    layer = {
        "mediaType": COSIGN_SIMPLESIGNING,
        "digest": str(Digest.of_bytes(payload)),
        "size": len(payload),
        "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDfakesignature"},
    }
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": str(Digest.of_bytes(config)),
            "size": len(config),
        },
        "layers": [layer],
    }
    blobs = {str(Digest.of_bytes(payload)): payload, str(Digest.of_bytes(config)): config}
    return canonical.dumps(doc), blobs


# ------------------------------------------------------------------------------ token server


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServer:
    """A loopback token server for the real registry's ``auth: token`` (distribution's token
    spec): checks Basic credentials, grants the requested scope, and signs an ES256 JWT whose
    ``x5c`` header carries a self-signed certificate the registry trusts (``rootcertbundle``)."""

    issuer = "stella-test-issuer"
    service = "stella-test-registry"

    def __init__(self, root: Path, user: tuple[str, str]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.user = user
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stella test token signer")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        root.mkdir(parents=True, exist_ok=True)
        self.bundle = root / "token-ca.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._der = self.cert.public_bytes(serialization.Encoding.DER)
        self.issued: list[str] = []
        self.http = LoopbackHTTP(lambda request, _: self._handle(request))
        self.realm = f"http://127.0.0.1:{self.http.port}/token"

    def __enter__(self) -> TokenServer:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    def _sign(self, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self._der).decode()]}
        claims = {
            "iss": self.issuer,
            "sub": self.user[0],
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": hashlib.sha256(os.urandom(16)).hexdigest()[:16],
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s_ = decode_dss_signature(der)
        return signing_input + "." + _b64url(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(h.path).query)
        expected = base64.b64encode(f"{self.user[0]}:{self.user[1]}".encode()).decode()
        if h.headers.get("Authorization", "") != f"Basic {expected}":
            status, body = 401, b'{"details":"wrong user name or password"}'
        elif query.get("service") != [self.service]:
            status, body = 400, b'{"details":"unknown service"}'
        else:
            access = []
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
            token = self._sign(access)
            self.issued.append(query.get("scope", [""])[0])
            status, body = 200, json.dumps({"token": token, "expires_in": 300}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)


def loopback_certificate(root: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA): (certificate PEM, key PEM)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stella test registry")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    root.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = root / "registry.crt", root / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# ------------------------------------------------------------------------------ real registry


class DockerRegistry:
    """Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1 with filesystem storage,
    optionally behind htpasswd basic auth or a token server, optionally over TLS (``tls``:
    certificate and key, see :func:`loopback_certificate`)."""

    def __init__(
        self,
        root: Path,
        *,
        user: tuple[str, str] | None = None,
        token: TokenServer | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.root = root
        self.tls = tls
        self.user = user if token is None else token.user
        self.token = token
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        # Every response carries this header, so a registry of another test process that
        # happens to listen on the port first is never taken for this one.
        self.identity = secrets.token_hex(8)
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = self._new_session()

    def _config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.root / 'data'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {self.host}",
            "  secret: stella-test-secret",
            "  headers:",
            f"    {IDENTITY_HEADER}: [{self.identity}]",
        ]
        if self.tls is not None:
            lines += ["  tls:", f"    certificate: {self.tls[0]}", f"    key: {self.tls[1]}"]
        if self.token is not None:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token.realm}",
                f"    service: {self.token.service}",
                f"    issuer: {self.token.issuer}",
                f"    rootcertbundle: {self.token.bundle}",
            ]
        elif self.user is not None:
            htpasswd = self.root / "htpasswd"
            line = subprocess.run(
                ["htpasswd", "-Bbn", *self.user], capture_output=True, check=True, text=True
            ).stdout.strip()
            htpasswd.write_text(line + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: stella-test", f"    path: {htpasswd}"]
        path = self.root / "config.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def __enter__(self) -> DockerRegistry:
        for _attempt in range(START_ATTEMPTS):
            if self._start():
                return self
            log = (self.root / "registry.log").read_text(errors="replace")
            self.__exit__()
            if "address already in use" not in log:
                break
            self.port = free_port()  # taken between free_port() and the registry's bind
            self.host = f"127.0.0.1:{self.port}"
            self.session = self._new_session()
        raise RuntimeError(
            f"docker-registry did not start: {(self.root / 'registry.log').read_text()[-2000:]}"
        )

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        if self.tls is not None:
            session.verify = str(self.tls[0])
        if self.user is not None and self.token is None:
            session.auth = self.user
        return session

    def _start(self) -> bool:
        """Start the registry; True once it answers on its port with its own identity."""
        config = self._config()
        with open(self.root / "registry.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)], stdout=log, stderr=log, env=clean_env()
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                answer = self.session.get(self.url("/v2/"), timeout=1)
                if answer.headers.get(IDENTITY_HEADER) == self.identity:
                    return answer.status_code in (200, 401)
            except requests.ConnectionError:
                pass
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
        self.session.close()

    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}{path}"

    # -- seeding ----------------------------------------------------------------------------

    def skopeo_copy(self, layout: Path, tag: str, dest: str, *extra: str) -> None:
        """``skopeo copy oci:LAYOUT:TAG docker://HOST/DEST`` over plain HTTP."""
        argv = [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            *extra,
        ]
        if self.user is not None:
            argv.append(f"--dest-creds={self.user[0]}:{self.user[1]}")
        argv += [f"oci:{layout}:{tag}", f"docker://{self.host}/{dest}"]
        done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")

    def push_blob(self, repo: str, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        resp = self.session.post(self.url(f"/v2/{repo}/blobs/uploads/"))
        assert resp.status_code == 202, resp.text
        location = resp.headers["Location"]
        if location.startswith("/"):
            location = self.url(location)
        sep = "&" if "?" in location else "?"
        put = self.session.put(
            f"{location}{sep}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert put.status_code == 201, put.text
        return digest

    def push_manifest(
        self, repo: str, reference: str, raw: bytes, media_type: str, blobs: dict[str, bytes]
    ) -> Digest:
        for data in blobs.values():
            self.push_blob(repo, data)
        resp = self.session.put(
            self.url(f"/v2/{repo}/manifests/{reference}"),
            data=raw,
            headers={"Content-Type": media_type},
        )
        assert resp.status_code == 201, resp.text
        return Digest.of_bytes(raw)

    def manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """The registry's bytes and media type for a manifest."""
        resp = self.session.get(
            self.url(f"/v2/{repo}/manifests/{reference}"),
            headers={
                "Accept": ", ".join(
                    [
                        OCI_INDEX,
                        OCI_MANIFEST,
                        "application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                    ]
                )
            },
        )
        assert resp.status_code == 200, resp.text
        return resp.content, resp.headers["Content-Type"]


# ------------------------------------------------------------------------------ fake registry


@dataclass
class FakeRegistry:
    """A registry in ``http.server`` serving fixed manifests and blobs, with faults.

    ``corrupt`` blobs are served with one byte flipped; ``cut_once`` blobs are cut after
    half their bytes on the first request (the connection is closed), then served with
    ``Range`` support; ``auth`` is ``None``, ``("basic", user, password)`` or
    ``("bearer", user, password)`` (a token endpoint at ``/token`` checks the password).
    With ``redirect_blobs`` (a base URL), blob GETs that pass authentication are answered
    ``307`` to the same path there, as registries send blobs to their storage.
    """

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    corrupt: set[str] = field(default_factory=set)
    cut_once: set[str] = field(default_factory=set)
    auth: tuple[str, str, str] | None = None
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    token: str = "fake-token-123"
    realm: str | None = None
    redirect_blobs: str | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.http = LoopbackHTTP(
            lambda request, method: self._handle(request, head=method == "HEAD"), ("GET", "HEAD")
        )
        self.host = f"127.0.0.1:{self.http.port}"

    def __enter__(self) -> FakeRegistry:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    def add_manifest(self, repo: str, tags: list[str], raw: bytes, media_type: str) -> Digest:
        digest = Digest.of_bytes(raw)
        for ref in [*tags, str(digest)]:
            self.manifests[f"{repo}/{ref}"] = (raw, media_type)
        return digest

    def add_blob(self, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        self.blobs[str(digest)] = data
        return digest

    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        if self.auth is None:
            return True
        scheme, user, password = self.auth
        given = h.headers.get("Authorization", "")
        if scheme == "basic":
            expected = base64.b64encode(f"{user}:{password}".encode()).decode()
            if given == f"Basic {expected}":
                return True
            self._send(h, 401, b"", {"WWW-Authenticate": 'Basic realm="fake"'})
            return False
        if given == f"Bearer {self.token}":
            return True
        challenge = (
            f'Bearer realm="{self.realm or f"http://{self.host}/token"}",service="fake-registry",'
            f'scope="repository:{_repo_of(h.path)}:pull"'
        )
        self._send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": challenge})
        return False

    def _token(self, h: BaseHTTPRequestHandler) -> None:
        assert self.auth is not None
        _, user, password = self.auth
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        if h.headers.get("Authorization", "") != f"Basic {expected}":
            self._send(h, 401, b'{"details":"bad credentials"}', {})
            return
        if "service=fake-registry" not in h.path or "scope=repository" not in h.path:
            self._send(h, 400, b'{"details":"no service or scope"}', {})
            return
        self._send(h, 200, json.dumps({"token": self.token}).encode(), {})

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        with self._lock:
            self.requests.append((h.command, h.path, dict(h.headers)))
        path = h.path.split("?")[0]
        if path == "/token":
            self._token(h)
            return
        if not self._authorized(h):
            return
        if path == "/v2/":
            self._send(h, 200, b"{}", {})
            return
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs|referrers)/([^/]+)", path)
        if m is None:
            self._send(h, 404, b"", {})
            return
        repo, kind, ref = m.groups()
        if kind == "referrers":
            self._send(h, 404, b"", {})
            return
        if kind == "manifests":
            found = self.manifests.get(f"{repo}/{ref}")
            if found is None:
                self._send(h, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {})
                return
            raw, media_type = found
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            self._send(h, 200, raw, {"Content-Type": media_type, "Docker-Content-Digest": digest})
            return
        if self.redirect_blobs is not None:
            self._send(h, 307, b"", {"Location": self.redirect_blobs + h.path})
            return
        data = self.blobs.get(ref)
        if data is None:
            self._send(h, 404, b"", {})
            return
        self._serve_blob(h, ref, data)

    def _serve_blob(self, h: BaseHTTPRequestHandler, digest: str, data: bytes) -> None:
        if digest in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
        if m is not None:
            start = int(m.group(1))
        if digest in self.cut_once:
            self.cut_once.discard(digest)
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if start:
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            h.send_response(200)
        h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        h.wfile.write(data[start:])


class ForwardProxy:
    """A plain-HTTP forward proxy on loopback that sends every request to one ``upstream``
    (host:port), whatever host the request names, so a registry name that resolves nowhere
    is reachable through it. It records ``(method, target, headers)``; ``CONNECT`` (HTTPS
    through the proxy) is answered 502, as a proxy that cannot reach the host would."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self.http = LoopbackHTTP(self._handle, ("GET", "HEAD", "CONNECT"))
        self.url = f"http://127.0.0.1:{self.http.port}"

    def __enter__(self) -> ForwardProxy:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests.append((method, h.path, dict(h.headers)))
        if method == "CONNECT":
            h.send_response(502)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        target = urlsplit(h.path)
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("proxy-authorization",)}
        conn = http.client.HTTPConnection(self.upstream, timeout=10)
        try:
            conn.request(method, path, headers=headers)
            upstream = conn.getresponse()
            body = upstream.read()
            h.send_response(upstream.status)
            for key, value in upstream.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    h.send_header(key, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if method != "HEAD":
                h.wfile.write(body)
        finally:
            conn.close()


def _repo_of(path: str) -> str:
    m = re.fullmatch(r"/v2/(.+)/(?:manifests|blobs|referrers)/[^/]+", path.split("?")[0])
    return m.group(1) if m else ""


def fake_image(fake: FakeRegistry, repo: str, tag: str, *, size: int = 300_000) -> Descriptor:
    """Put a one-layer OCI image in ``fake`` (layer of ``size`` pseudo-random bytes)."""
    payload = hashlib.shake_256(b"stella" + str(size).encode()).digest(size)
    layer = gzip.compress(payload, compresslevel=1, mtime=0)
    config = canonical.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    layer_d = fake.add_blob(layer)
    config_d = fake.add_blob(config)
    manifest = canonical.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": str(config_d), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": str(layer_d), "size": len(layer)}],
        }
    )
    digest = fake.add_manifest(repo, [tag], manifest, OCI_MANIFEST)
    return Descriptor(OCI_MANIFEST, digest, len(manifest))


def break_image(fake: FakeRegistry, repo: str, image: Descriptor, fault: str) -> tuple[str, str]:
    """Damage ``image`` as ``fault`` says: ``corrupt blob`` (its layer served altered),
    ``altered manifest`` (served with other bytes than its digest) or ``missing image``; its
    layer's digest, and what the error of a pull that checks what it is served then says."""
    key = f"{repo}/{image.digest}"
    raw, _ = fake.manifests[key]
    layer: str = json.loads(raw)["layers"][0]["digest"]
    if fault == "corrupt blob":
        fake.corrupt.add(layer)
        return layer, f"blob {layer} came with the wrong content"
    if fault == "altered manifest":
        fake.manifests[key] = (
            raw.replace(b'"schemaVersion":2', b'"schemaVersion": 2'),
            OCI_MANIFEST,
        )
        return layer, "from the registry hashes to"
    if fault == "missing image":
        del fake.manifests[key]
        return layer, "registry has no manifest"
    raise ValueError(fault)


def layer_digests(raw: bytes) -> list[str]:
    doc = json.loads(raw)
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


__all__ = [
    "COSIGN_SIMPLESIGNING",
    "SIGSTORE_BUNDLE_V03",
    "SPDX_JSON",
    "DockerRegistry",
    "FakeRegistry",
    "ForwardProxy",
    "TokenServer",
    "artifact_manifest",
    "build_image",
    "build_index",
    "clean_env",
    "cosign_signature",
    "fake_image",
    "free_port",
    "layer_digests",
]
