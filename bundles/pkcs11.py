"""The PKCS#11 signer: an ECDSA P-256 key that never leaves its token (python-pkcs11).

The key pair is generated inside the token with the private half ``CKA_SENSITIVE`` true and
``CKA_EXTRACTABLE`` false, so neither the appliance nor anyone holding the token's PIN can read
it out: the token only ever hands back signatures. What the token returns for ``CKM_ECDSA`` is
the raw ``r‖s`` pair over a SHA-256 digest computed here (every token implements ``CKM_ECDSA``;
``CKM_ECDSA_SHA256`` is optional, SoftHSM2 lacks it); :meth:`Pkcs11Signer.sign` converts it to
the DER ``ECDSA-Sig-Value`` that DSSE, cosign and :meth:`bundles.keys.PublicKey.verify` expect.

The signers of one token in one process share one logged-in session, given up when the last
of them is closed (or garbage-collected). Errors name the URI part at fault and what to do (see
:mod:`bundles.signer`).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import weakref
from typing import Any, Final

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import exceptions as p11
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import KeyType as P11KeyType
from pkcs11.mechanisms import Mechanism
from pkcs11.types import PrivateKey as P11PrivateKey
from pkcs11.types import PublicKey as P11PublicKey
from pkcs11.types import Session, Token

from bundles.errors import SignerError
from bundles.keys import PublicKey
from bundles.pkcs11_uri import (
    Pkcs11KeyMissingError,
    Pkcs11ModuleError,
    Pkcs11ObjectError,
    Pkcs11PinError,
    Pkcs11TokenError,
    Pkcs11Uri,
)

P256_PARAMS: Final = bytes.fromhex("06082a8648ce3d030107")
"""DER of the named-curve OID 1.2.840.10045.3.1.7 (P-256), the form CKA_EC_PARAMS takes."""

_lock = threading.Lock()  # guards _shared (below) and token look-ups


def _library(uri: Pkcs11Uri) -> Any:
    path = uri.module_path
    if not path.is_file():
        raise Pkcs11ModuleError(
            f"{uri}: module-path={path} does not exist",
            hint="install the token's PKCS#11 library (SoftHSM2: the softhsm2 package) "
            "or correct module-path",
        )
    try:
        return pkcs11.lib(str(path))
    except p11.PKCS11Error as e:
        raise Pkcs11ModuleError(
            f"{uri}: module-path={path} cannot be loaded as a PKCS#11 module: {e}",
            hint="module-path must name the token vendor's PKCS#11 shared library",
        ) from e


def _matches(token: Token, uri: Pkcs11Uri) -> bool:
    if uri.token is not None and token.label != uri.token:
        return False
    if uri.serial is not None and token.serial.decode("ascii", "replace").strip() != uri.serial:
        return False
    if uri.manufacturer is not None and token.manufacturer_id != uri.manufacturer:
        return False
    if uri.model is not None and token.model != uri.model:
        return False
    return uri.slot_id is None or token.slot.slot_id == uri.slot_id


def _find_token(lib: Any, uri: Pkcs11Uri) -> Token:
    def scan() -> list[Token]:
        return [
            slot.get_token()
            for slot in lib.get_slots(token_present=True)
            if _matches(slot.get_token(), uri)
        ]

    try:
        found = scan()
        module = str(uri.module_path)
        if not found and not any(key[0] == module for key in _shared):
            # A module lists the tokens it saw at C_Initialize: look again, once, so a token
            # inserted (or initialized) since then is found. Only safe with no session open.
            lib.reinitialize()
            found = scan()
    except p11.PKCS11Error as e:
        raise Pkcs11TokenError(f"{uri}: cannot list the module's tokens: {e!r}") from e
    if not found:
        raise Pkcs11TokenError(
            f"{uri}: no token matches {uri.token_name} in {uri.module_path}",
            hint="insert or initialize the token (SoftHSM2: softhsm2-util --init-token), "
            "or correct token= in the URI",
        )
    if len(found) > 1:
        raise Pkcs11TokenError(
            f"{uri}: {len(found)} tokens match {uri.token_name}",
            hint="add serial=… to the URI to choose one",
        )
    return found[0]


def _login(token: Token, uri: Pkcs11Uri, pin: str) -> Session:
    try:
        return token.open(rw=True, user_pin=pin)
    except p11.PinIncorrect as e:
        source = f"pin-source={uri.pin_source}" if uri.pin_source else "STELLA_PKCS11_PIN"
        raise Pkcs11PinError(
            f"{uri}: the token refused the PIN from {source} (wrong PIN)",
            hint="put the token's user PIN there; repeated wrong PINs may lock the token",
        ) from e
    except p11.PinLocked as e:
        raise Pkcs11PinError(
            f"{uri}: the token's user PIN is locked",
            hint="unlock it with the security officer PIN (the token vendor's tool)",
        ) from e
    except (p11.PinInvalid, p11.PinLenRange) as e:
        raise Pkcs11PinError(
            f"{uri}: the token does not accept the PIN's form ({type(e).__name__})",
            hint="check the PIN file or STELLA_PKCS11_PIN holds the user PIN only",
        ) from e
    except p11.UserPinNotInitialized as e:
        raise Pkcs11PinError(
            f"{uri}: the token has no user PIN yet",
            hint="initialize the token first (SoftHSM2: softhsm2-util --init-token … --pin)",
        ) from e
    except (p11.TokenNotPresent, p11.DeviceRemoved) as e:
        raise Pkcs11TokenError(
            f"{uri}: the token ({uri.token_name}) was removed",
            hint="insert the token and try again",
        ) from e
    except p11.PKCS11Error as e:
        raise Pkcs11TokenError(f"{uri}: cannot open a session on the token: {e!r}") from e


def _key_template(uri: Pkcs11Uri, cls: ObjectClass) -> dict[Attribute, Any]:
    template: dict[Attribute, Any] = {Attribute.CLASS: cls}
    if uri.object is not None:
        template[Attribute.LABEL] = uri.object
    if uri.id is not None:
        template[Attribute.ID] = uri.id
    return template


def _objects(session: Session, uri: Pkcs11Uri, cls: ObjectClass) -> list[Any]:
    try:
        return list(session.get_objects(_key_template(uri, cls)))
    except p11.PKCS11Error as e:
        raise Pkcs11ObjectError(f"{uri}: cannot search the token for {uri.key_name}: {e!r}") from e


def _ec_point(raw: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 2.40); a few tokens
    give the bare point. Either way, the uncompressed point."""
    if len(raw) == 67 and raw[:2] == b"\x04\x41":
        return raw[2:]
    return raw


def _public_key(session: Session, uri: Pkcs11Uri) -> PublicKey:
    found = _objects(session, uri, ObjectClass.PUBLIC_KEY)
    if len(found) != 1:
        what = "no public key object" if not found else f"{len(found)} public key objects"
        raise Pkcs11ObjectError(
            f"{uri}: the token holds {what} for {uri.key_name}",
            hint="the public half must be on the token beside the private key "
            "(keys made by 'stella keys generate --signer' have it)",
        )
    pub: P11PublicKey = found[0]
    try:
        params, point = pub[Attribute.EC_PARAMS], pub[Attribute.EC_POINT]
    except p11.PKCS11Error as e:
        raise Pkcs11ObjectError(
            f"{uri}: {uri.key_name} is not an elliptic-curve key",
            hint="use an ECDSA P-256 key (stella keys generate --signer makes one)",
        ) from e
    if bytes(params) != P256_PARAMS:
        raise Pkcs11ObjectError(
            f"{uri}: {uri.key_name} is on a curve other than P-256",
            hint="use an ECDSA P-256 key (stella keys generate --signer makes one)",
        )
    try:
        crypto = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _ec_point(point))
    except ValueError as e:
        raise Pkcs11ObjectError(f"{uri}: {uri.key_name} has an unreadable EC point") from e
    der = crypto.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return PublicKey(der, source=str(uri))


def _private_key(session: Session, uri: Pkcs11Uri) -> Any:
    """The private key object (typed ``Any``: python-pkcs11's stubs leave out its sign())."""
    found = _objects(session, uri, ObjectClass.PRIVATE_KEY)
    if not found:
        raise Pkcs11KeyMissingError(
            f"{uri}: the token ({uri.token_name}) holds no private key {uri.key_name}",
            hint=f"create it with 'stella keys generate --signer {uri}', or correct object= "
            "in the URI",
        )
    if len(found) > 1:
        raise Pkcs11ObjectError(
            f"{uri}: {len(found)} private keys match {uri.key_name}",
            hint="add id=… to the URI to choose one",
        )
    key: P11PrivateKey = found[0]
    if key.key_type != P11KeyType.EC:
        raise Pkcs11ObjectError(
            f"{uri}: {uri.key_name} is a {key.key_type.name} key, not ECDSA P-256",
            hint="use an ECDSA P-256 key (stella keys generate --signer makes one)",
        )
    return key


class _Shared:
    """One logged-in session on one token, shared by every signer of this process on it.

    PKCS#11 logs a whole application in or out of a token, not one session: a second login
    fails with ``CKR_USER_ALREADY_LOGGED_IN``. So the first signer of a token logs in, later
    ones share its session, and the last one to close it logs out. A session runs one
    operation at a time: ``lock`` serializes them.
    """

    __slots__ = ("key", "lock", "refs", "session")

    def __init__(self, key: tuple[str, int], session: Session) -> None:
        self.key = key
        self.session = session
        self.lock = threading.Lock()
        self.refs = 0


_shared: dict[tuple[str, int], _Shared] = {}


def _acquire(uri: Pkcs11Uri, pin: str) -> _Shared:
    lib = _library(uri)
    with _lock:
        token = _find_token(lib, uri)
        key = (str(uri.module_path), int(token.slot.slot_id))
        shared = _shared.get(key)
        if shared is None:
            shared = _shared[key] = _Shared(key, _login(token, uri, pin))
        shared.refs += 1
        return shared


def _release(shared: _Shared) -> None:
    with _lock:
        shared.refs -= 1
        if shared.refs > 0:
            return
        _shared.pop(shared.key, None)
        with contextlib.suppress(p11.PKCS11Error):  # a removed token took its session along
            shared.session.close()


class Pkcs11Signer:
    """An ECDSA P-256 key in a PKCS#11 token. Its ``repr`` names the URI and keyid only."""

    __slots__ = ("__weakref__", "_closer", "_key", "_public", "_shared", "uri")

    def __init__(self, uri: Pkcs11Uri, shared: _Shared) -> None:
        """Takes over one reference to ``shared``, released by :meth:`close`."""
        self.uri = uri
        self._shared = shared
        self._closer = weakref.finalize(self, _release, shared)
        with shared.lock:
            self._key = _private_key(shared.session, uri)
            self._public = _public_key(shared.session, uri)

    @property
    def keyid(self) -> str:
        return self._public.keyid

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 over SHA-256 of ``data``, made by the token, as a DER signature."""
        digest = hashlib.sha256(data).digest()
        try:
            with self._shared.lock:
                raw = self._key.sign(digest, mechanism=Mechanism.ECDSA)
        except (p11.TokenNotPresent, p11.DeviceRemoved, p11.SessionHandleInvalid) as e:
            raise SignerError(
                f"{self.uri}: the token went away while signing",
                hint="insert the token and run the command again",
            ) from e
        except p11.PKCS11Error as e:
            raise SignerError(f"{self.uri}: the token refused to sign: {e!r}") from e
        if len(raw) != 64:
            raise SignerError(
                f"{self.uri}: the token returned a {len(raw)}-byte signature, expected r‖s "
                "of 64 bytes for P-256"
            )
        return encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )

    def close(self) -> None:
        """Give up the session (the last signer of a token logs out); also done when the
        signer is garbage-collected."""
        self._closer()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Pkcs11Signer(uri={str(self.uri)!r}, keyid={self.keyid!r})"


def open_signer(uri: Pkcs11Uri, pin: str) -> Pkcs11Signer:
    """Open the existing key ``uri`` names (see :func:`bundles.signer.load_signer`)."""
    return Pkcs11Signer(uri, _acquire(uri, pin))


def generate_signer(uri: Pkcs11Uri, pin: str) -> Pkcs11Signer:
    """Generate an ECDSA P-256 key pair inside the token under the URI's label (and id);
    the private key is sensitive and never extractable. Refuses when either half exists."""
    if uri.object is None:
        raise Pkcs11ObjectError(
            f"{uri}: a new key needs a label",
            hint="add object=LABEL to the URI, e.g. object=appliance",
        )
    shared = _acquire(uri, pin)
    try:
        with shared.lock:
            _generate(shared.session, uri)
    except BaseException:
        _release(shared)
        raise
    return Pkcs11Signer(uri, shared)


def _generate(session: Session, uri: Pkcs11Uri) -> None:
    existing = _objects(session, uri, ObjectClass.PRIVATE_KEY) + _objects(
        session, uri, ObjectClass.PUBLIC_KEY
    )
    if existing:
        raise Pkcs11ObjectError(
            f"{uri}: the token ({uri.token_name}) already holds {uri.key_name}",
            hint="keys are never replaced: use it as it is, or choose another object= label",
        )
    common: dict[Attribute, Any] = {Attribute.TOKEN: True, Attribute.LABEL: uri.object}
    if uri.id is not None:
        common[Attribute.ID] = uri.id
    try:
        params = session.create_domain_parameters(
            P11KeyType.EC, {Attribute.EC_PARAMS: P256_PARAMS}, local=True
        )
        params.generate_keypair(
            store=True,
            mechanism=Mechanism.EC_KEY_PAIR_GEN,
            public_template={**common, Attribute.VERIFY: True, Attribute.PRIVATE: False},
            private_template={
                **common,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DERIVE: False,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
            },
        )
    except p11.PKCS11Error as e:
        raise Pkcs11ObjectError(
            f"{uri}: the token could not generate an ECDSA P-256 key: {e!r}",
            hint="the token must support CKM_EC_KEY_PAIR_GEN on P-256 and be writable",
        ) from e


def key_protection(signer: Pkcs11Signer) -> dict[str, bool]:
    """How the token protects the private key, read back from the token: ``sensitive``,
    ``extractable``, ``alwaysSensitive`` and ``neverExtractable``."""
    names = {
        "sensitive": Attribute.SENSITIVE,
        "extractable": Attribute.EXTRACTABLE,
        "alwaysSensitive": Attribute.ALWAYS_SENSITIVE,
        "neverExtractable": Attribute.NEVER_EXTRACTABLE,
    }
    key = signer._key
    with signer._shared.lock:
        return {name: bool(key[attr]) for name, attr in names.items()}
