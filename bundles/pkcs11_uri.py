"""RFC 7512 ``pkcs11:`` URIs: which token and key a signer reference names, and where the
token's PIN comes from (a ``pin-source`` file or ``$STELLA_PKCS11_PIN``; never the URI itself).

Parsing needs no PKCS#11 library: :mod:`bundles.signer` reads references with it, and only
opening a key (:mod:`bundles.pkcs11`) loads the token's module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bundles.errors import SignerError

PKCS11_SCHEME: Final = "pkcs11:"

PIN_ENV: Final = "STELLA_PKCS11_PIN"
"""Environment variable a token's user PIN is read from when the URI names no pin-source."""
PIN_FILE_LIMIT: Final = 1024
URI_LIMIT: Final = 4096


class Pkcs11UriError(SignerError):
    """A ``pkcs11:`` URI is malformed, or names something this appliance does not support."""


class Pkcs11PinError(SignerError):
    """A token's PIN is missing, unreadable, given where it must not be, or wrong."""


class Pkcs11ModuleError(SignerError):
    """The PKCS#11 module (the token's shared library) is missing or cannot be loaded."""


class Pkcs11TokenError(SignerError):
    """No token matches the URI, or more than one does."""


class Pkcs11ObjectError(SignerError):
    """The key object the URI names is missing, ambiguous, already there, or unusable."""


class Pkcs11KeyMissingError(Pkcs11ObjectError):
    """The token holds no private key with the URI's label (and id)."""


# RFC 7512 §2.3: the path attributes this appliance selects tokens and keys by.
_PATH_ATTRS: Final = frozenset(
    {"token", "manufacturer", "serial", "model", "object", "id", "type", "slot-id"}
)
# RFC 7512 attributes that are valid but not supported here, with what to do instead.
_UNSUPPORTED: Final = {
    "library-manufacturer": "select the library with module-path",
    "library-description": "select the library with module-path",
    "library-version": "select the library with module-path",
    "slot-description": "select the token with token= or serial=",
    "slot-manufacturer": "select the token with token= or serial=",
    "module-name": "name the library's file with module-path=/path/to/module.so "
    "(modules are never searched for)",
}
_QUERY_ATTRS: Final = frozenset({"module-path", "pin-source"})
_NAME: Final = re.compile(r"[a-z][a-z0-9-]*\Z")
# Blanks around the name are tolerated so that "; pin-value=…" is refused here too, rather
# than echoed by the message for a malformed attribute.
_PIN_VALUE: Final = re.compile(r"([?&;:]\s*)pin-value\s*=[^&;#]*", re.IGNORECASE)
_PCT: Final = re.compile(rb"%([0-9A-Fa-f]{2})")
# RFC 7512 §2.3: unreserved characters and pk11-res-avail, plus "&" in the path
# (pk11-path-res-avail) or "/", "?", "|" in the query (pk11-query-res-avail); anything else
# must be percent-encoded.
_RES_AVAIL: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:[]@!$'()*+,="
)
_PATH_CHARS: Final = _RES_AVAIL | frozenset("&")
_QUERY_CHARS: Final = _RES_AVAIL | frozenset("/?|")


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI. ``text`` is the URI exactly as given (it holds no secret)."""

    text: str
    module_path: Path
    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    slot_id: int | None = None
    object: str | None = None
    id: bytes | None = None
    pin_source: Path | None = None

    def __str__(self) -> str:
        return self.text

    @property
    def key_name(self) -> str:
        """How the URI names the key, for messages: ``object=appliance`` or ``id=%01``."""
        parts = []
        if self.object is not None:
            parts.append(f"object={self.object}")
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        return ";".join(parts)

    @property
    def token_name(self) -> str:
        """How the URI names the token, for messages: ``token=stella`` (and the rest)."""
        parts = [
            f"{name}={value}"
            for name, value in (
                ("token", self.token),
                ("serial", self.serial),
                ("manufacturer", self.manufacturer),
                ("model", self.model),
                ("slot-id", self.slot_id),
            )
            if value is not None
        ]
        return ";".join(parts)


def is_pkcs11_uri(reference: str | Path) -> bool:
    """True when ``reference`` is a ``pkcs11:`` URI rather than a key file's path."""
    return isinstance(reference, str) and reference[:7].lower() == PKCS11_SCHEME


def _decode(value: str, name: str, uri: str, allowed: frozenset[str]) -> bytes:
    """Percent-decode an attribute value strictly: a bad escape or a character that must
    be encoded is an error, never passed on."""
    for ch in value:
        if ch != "%" and ch not in allowed:
            raise Pkcs11UriError(
                f"{uri}: attribute {name!r} contains {ch!r}, which must be percent-encoded",
                hint=f"write it as %{ord(ch):02X}" if ord(ch) < 128 else "percent-encode its UTF-8",
            )
    raw = value.encode("ascii")  # every allowed character is ASCII
    stripped = _PCT.sub(b"", raw)
    if b"%" in stripped:
        raise Pkcs11UriError(
            f"{uri}: attribute {name!r} has a '%' not followed by two hex digits",
            hint="percent-encode '%' itself as %25",
        )
    return _PCT.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _text(value: bytes, name: str, uri: str) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Pkcs11UriError(f"{uri}: attribute {name!r} is not UTF-8 once decoded") from e
    if not text:
        raise Pkcs11UriError(
            f"{uri}: attribute {name!r} is empty", hint=f"give it a value or leave {name} out"
        )
    return text


def _attributes(part: str, sep: str, uri: str, allowed: frozenset[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    if not part:
        return found
    for item in part.split(sep):
        name, eq, value = item.partition("=")
        if not eq or not _NAME.match(name):
            raise Pkcs11UriError(
                f"{uri}: {item!r} is not a name=value attribute",
                hint=f"attributes are separated by {sep!r}, e.g. token=stella;object=appliance",
            )
        if name in _UNSUPPORTED:
            raise Pkcs11UriError(
                f"{uri}: attribute {name!r} is not supported", hint=_UNSUPPORTED[name]
            )
        if name not in _PATH_ATTRS | _QUERY_ATTRS:
            raise Pkcs11UriError(
                f"{uri}: unknown attribute {name!r}",
                hint="supported: " + ", ".join(sorted(_PATH_ATTRS | _QUERY_ATTRS)),
            )
        where = "query (after '?')" if name in _QUERY_ATTRS else "path (before '?')"
        if name not in allowed:
            raise Pkcs11UriError(
                f"{uri}: attribute {name!r} belongs in the URI's {where}",
                hint="pkcs11:token=…;object=…?module-path=…&pin-source=…",
            )
        if name in found:
            raise Pkcs11UriError(
                f"{uri}: attribute {name!r} appears twice", hint="give each attribute once"
            )
        found[name] = _decode(value, name, uri, _QUERY_CHARS if sep == "&" else _PATH_CHARS)
    return found


def _pin_source(value: bytes, uri: str) -> Path:
    text = _text(value, "pin-source", uri)
    if text.startswith("|"):
        raise Pkcs11UriError(
            f"{uri}: pin-source={text} runs a program, which is not supported",
            hint="name a file holding the PIN: pin-source=file:/path/to/pin",
        )
    if text.startswith("file:"):
        path = text[len("file:") :]
        if path.startswith("//"):  # file://HOST/path: only an empty host (or localhost)
            host, slash, rest = path[2:].partition("/")
            if host not in ("", "localhost") or not slash:
                raise Pkcs11UriError(
                    f"{uri}: pin-source={text} names a file on another host",
                    hint="use a local absolute path: pin-source=file:/path/to/pin",
                )
            path = "/" + rest
    else:
        path = text
    if not path.startswith("/"):
        raise Pkcs11UriError(
            f"{uri}: pin-source={text} is not an absolute path",
            hint="use pin-source=file:/absolute/path/to/pin",
        )
    return Path(path)


def parse_pkcs11_uri(text: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI strictly; every problem is a :class:`Pkcs11UriError` (or a
    :class:`Pkcs11PinError` for a PIN written into the URI) naming the attribute."""
    if len(text) > URI_LIMIT:
        raise Pkcs11UriError(f"pkcs11: URI of {len(text)} characters exceeds {URI_LIMIT}")
    if not is_pkcs11_uri(text):  # the scheme is case-insensitive (RFC 3986 §3.1)
        raise Pkcs11UriError(
            f"{text[:80]!r} is not a pkcs11: URI",
            hint="write pkcs11:token=LABEL;object=LABEL?module-path=/path/to/module.so",
        )
    if _PIN_VALUE.search(text):  # refused first, and the PIN is never echoed
        shown = _PIN_VALUE.sub(r"\1pin-value=…", text)
        raise Pkcs11PinError(
            f"{shown}: the URI carries the PIN (pin-value); a "
            "PIN on a command line or in a stored URI is readable by other users and kept in "
            "shell history and logs",
            hint=f"remove pin-value and put the PIN in a file named by pin-source=file:… "
            f"(mode 0600) or in the environment variable {PIN_ENV}",
        )
    body = text[len(PKCS11_SCHEME) :]
    if "#" in body:
        raise Pkcs11UriError(f"{text}: a pkcs11: URI has no fragment ('#')")
    path_part, _, query_part = body.partition("?")
    attrs = _attributes(path_part, ";", text, _PATH_ATTRS)
    attrs |= _attributes(query_part, "&", text, _QUERY_ATTRS)

    def get(name: str) -> str | None:
        return _text(attrs[name], name, text) if name in attrs else None

    kind = get("type")
    if kind is not None and kind != "private":
        raise Pkcs11UriError(
            f"{text}: type={kind} names no signing key", hint="use type=private or leave it out"
        )
    slot_text = get("slot-id")
    slot_id = None
    if slot_text is not None:
        if not slot_text.isdigit():
            raise Pkcs11UriError(f"{text}: slot-id={slot_text} is not a decimal number")
        slot_id = int(slot_text)
    token, serial = get("token"), get("serial")
    if token is None and serial is None and slot_id is None:
        raise Pkcs11UriError(
            f"{text}: the URI names no token",
            hint="add token=LABEL (or serial=…) to the path, e.g. pkcs11:token=stella;…",
        )
    obj = get("object")
    key_id = attrs.get("id")
    if key_id is not None and not key_id:
        raise Pkcs11UriError(f"{text}: attribute 'id' is empty")
    if obj is None and key_id is None:
        raise Pkcs11UriError(
            f"{text}: the URI names no key object",
            hint="add object=LABEL to the path, e.g. pkcs11:token=stella;object=appliance",
        )
    module = get("module-path")
    if module is None:
        raise Pkcs11UriError(
            f"{text}: module-path is missing",
            hint="add ?module-path=/path/to/module.so, the token's PKCS#11 library "
            "(SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)",
        )
    if not module.startswith("/"):
        raise Pkcs11UriError(
            f"{text}: module-path={module} is not an absolute path",
            hint="name the library by its absolute path",
        )
    pin_source = _pin_source(attrs["pin-source"], text) if "pin-source" in attrs else None
    return Pkcs11Uri(
        text=text,
        module_path=Path(module),
        token=token,
        manufacturer=get("manufacturer"),
        serial=serial,
        model=get("model"),
        slot_id=slot_id,
        object=obj,
        id=key_id,
        pin_source=pin_source,
    )


def token_pin(uri: Pkcs11Uri, environ: Mapping[str, str] | None = None) -> str:
    """The token's user PIN: the pin-source file's first line when the URI names one, else
    ``$STELLA_PKCS11_PIN``. Never from the command line."""
    if uri.pin_source is not None:
        path = uri.pin_source
        try:
            with open(path, "rb") as fh:
                data = fh.read(PIN_FILE_LIMIT + 1)
        except FileNotFoundError as e:
            raise Pkcs11PinError(
                f"{uri}: pin-source file {path} does not exist",
                hint="write the token's user PIN into it (mode 0600), or fix pin-source",
            ) from e
        except OSError as e:
            raise Pkcs11PinError(f"{uri}: cannot read pin-source file {path}: {e.strerror}") from e
        if len(data) > PIN_FILE_LIMIT:
            raise Pkcs11PinError(
                f"{uri}: pin-source file {path} is larger than {PIN_FILE_LIMIT} bytes",
                hint="the file must hold the PIN only",
            )
        lines = data.splitlines()
        try:
            pin = lines[0].decode("utf-8") if lines else ""
        except UnicodeDecodeError as e:
            raise Pkcs11PinError(f"{uri}: pin-source file {path} is not UTF-8 text") from e
        if not pin:
            raise Pkcs11PinError(
                f"{uri}: pin-source file {path} is empty",
                hint="write the token's user PIN on its first line",
            )
        return pin
    pin = (os.environ if environ is None else environ).get(PIN_ENV, "")
    if not pin:
        raise Pkcs11PinError(
            f"{uri}: no PIN for the token",
            hint=f"set the environment variable {PIN_ENV}, or add "
            "&pin-source=file:/path/to/pin to the URI",
        )
    return pin


def read_uri_file(path: Path) -> str:
    """The ``pkcs11:`` URI a ``*.uri`` file holds (its first line)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(URI_LIMIT + 2)
    except FileNotFoundError as e:
        raise SignerError(f"{path}: no such signer file", hint="check the path") from e
    except OSError as e:
        raise SignerError(f"{path}: cannot read signer file: {e.strerror}") from e
    lines = data.decode("utf-8", "replace").splitlines()
    text = lines[0].strip() if lines else ""
    if not is_pkcs11_uri(text):
        raise SignerError(
            f"{path}: does not hold a pkcs11: URI",
            hint="a .uri file holds one line: the signer's pkcs11: URI",
        )
    return text
