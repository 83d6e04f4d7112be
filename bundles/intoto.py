"""in-toto Statement v1: what a signature is about (subjects by digest) and what it says.

Spec: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md. Statements are
written as RFC 8785 canonical JSON, built from plain JSON values (never through protobuf
``Struct``, which would turn the integer 3 into 3.0), and signed as the payload of a DSSE
envelope of type :data:`PAYLOAD_TYPE`.

Reading follows the spec's parsing rule that consumers ignore fields they do not know: unknown
top-level fields and unknown subject fields (other ResourceDescriptor fields such as ``uri``)
are kept in ``unrecognized``, written back by :meth:`Statement.to_bytes`, and never
interpreted. Verification parses the exact payload bytes the signatures cover; nothing is
re-serialized in order to be checked.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bundles import canonical, dsse
from bundles.digest import SHA256, Digest
from bundles.errors import CanonicalJSONError, SizeLimitError, StatementError
from bundles.signer import Signer

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
STATEMENT_LIMIT: Final = dsse.ENVELOPE_LIMIT

_KNOWN_STATEMENT_FIELDS: Final = frozenset({"_type", "subject", "predicateType", "predicate"})
_KNOWN_SUBJECT_FIELDS: Final = frozenset({"name", "digest"})
_HEX_LENGTHS: Final = {
    "sha256": 64,
    "sha224": 56,
    "sha384": 96,
    "sha512": 128,
    "sha512_224": 56,
    "sha512_256": 64,
    "sha3_224": 56,
    "sha3_256": 64,
    "sha3_384": 96,
    "sha3_512": 128,
    "sha1": 40,
    "md5": 32,
}
_LOWER_HEX = re.compile(r"[0-9a-f]+")


class StatementFormatError(StatementError):
    """A statement is not a well-formed in-toto Statement v1."""


class StatementTooLargeError(StatementFormatError, SizeLimitError):
    """A statement is larger than the size limit it was read under."""


class PredicateTypeMismatchError(StatementError):
    """A verified statement has another predicate type than the caller expects."""


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value))


class _Parsed(Mapping[str, Any]):
    """A read-only JSON object kept as the canonical bytes it was made from, parsed when it is
    first read (:meth:`Statement.of_canonical`)."""

    __slots__ = ("_data", "_doc")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._doc: Mapping[str, Any] | None = None

    def _parsed(self) -> Mapping[str, Any]:
        if self._doc is None:
            doc = json.loads(self._data)
            if not isinstance(doc, dict):
                raise StatementFormatError("statement predicate bytes are not a JSON object")
            self._doc = types.MappingProxyType(doc)
        return self._doc

    def __getitem__(self, key: str) -> Any:
        return self._parsed()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def __repr__(self) -> str:
        return repr(self._parsed())


@dataclass(frozen=True, slots=True)
class Subject:
    """One artifact a statement is about, identified by its digests (``sha256`` required).

    ``name`` is ``""`` when the statement leaves it unset; ``unrecognized`` holds other
    ResourceDescriptor fields as they were read.
    """

    name: str
    digest: Mapping[str, str]
    unrecognized: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise StatementFormatError(f"subject name must be a string, got {self.name!r}")
        _check_digest_set(self.digest, f"subject {self.name!r}")
        object.__setattr__(self, "digest", _frozen(self.digest))
        object.__setattr__(self, "unrecognized", _frozen(self.unrecognized))

    @classmethod
    def of(cls, name: str, digest: Digest) -> Subject:
        return cls(name=name, digest={SHA256: digest.hex})

    @property
    def sha256(self) -> Digest:
        return Digest(self.digest[SHA256])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.unrecognized)
        if self.name:
            out["name"] = self.name
        out["digest"] = dict(self.digest)
        return out

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.digest.items()))))


def _check_digest_set(digest: Any, where: str) -> None:
    if not isinstance(digest, Mapping) or not digest:
        raise StatementFormatError(
            f"{where}: digest must be a non-empty object of algorithm to hex value, got {digest!r}"
        )
    if SHA256 not in digest:
        raise StatementFormatError(
            f"{where}: digest has no sha256 (has {', '.join(sorted(map(str, digest)))})",
            hint="every subject needs a sha256 digest",
        )
    for algorithm, value in digest.items():
        if not isinstance(algorithm, str) or not algorithm:
            raise StatementFormatError(f"{where}: digest algorithm {algorithm!r} is not a name")
        if not isinstance(value, str) or not value:
            raise StatementFormatError(
                f"{where}: digest {algorithm} value must be a non-empty string, got {value!r}"
            )
        length = _HEX_LENGTHS.get(algorithm)
        if length is not None and (len(value) != length or not _LOWER_HEX.fullmatch(value)):
            raise StatementFormatError(
                f"{where}: bad {algorithm} digest {value!r}",
                hint=f"expected {length} lowercase hexadecimal characters",
            )


@dataclass(frozen=True, slots=True)
class Statement:
    """An in-toto Statement v1. ``predicate`` is a JSON object (empty when unset)."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any] = field(default_factory=dict)
    unrecognized: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # its canonical bytes, made once (a statement is immutable): signing, digests and
    # hashing all use them, and an SBOM's statement is large
    _bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        # fail now, not at signing time, on values JSON cannot carry
        object.__setattr__(self, "_bytes", self._canonical())

    @classmethod
    def of_canonical(
        cls,
        subjects: Iterable[Subject],
        predicate_type: str,
        predicate: Mapping[str, Any] | None,
        predicate_bytes: bytes,
    ) -> Statement:
        """The statement about ``subjects`` whose predicate's canonical bytes the caller
        already holds (``predicate_bytes``, exactly ``canonical.dumps(predicate)``: a scan's
        SBOM, a verdict's predicate): its bytes are assembled around them instead of the
        predicate being copied and serialized again. The same statement, byte for byte, as
        ``Statement(subjects, predicate_type, predicate)``. No ``predicate``: it is parsed
        from ``predicate_bytes`` when first read (a statement made to be signed is seldom
        read)."""
        if not predicate_bytes.startswith(b"{") or not predicate_bytes.endswith(b"}"):
            raise StatementFormatError("statement predicate bytes are not a JSON object")
        statement = object.__new__(cls)
        object.__setattr__(statement, "subjects", tuple(subjects))
        object.__setattr__(statement, "predicate_type", predicate_type)
        object.__setattr__(
            statement, "predicate", _Parsed(predicate_bytes) if predicate is None else predicate
        )
        object.__setattr__(statement, "unrecognized", {})
        statement._check()
        # RFC 8785 orders the keys "_type" < "predicate" < "predicateType" < "subject"
        rest = statement._canonical_without_predicate()
        head = b'{"_type":' + canonical.dumps(STATEMENT_TYPE) + b',"predicate":'
        object.__setattr__(statement, "_bytes", head + predicate_bytes + b"," + rest[1:])
        return statement

    def _canonical_without_predicate(self) -> bytes:
        try:
            return canonical.dumps(
                {
                    "predicateType": self.predicate_type,
                    "subject": [s.to_dict() for s in self.subjects],
                }
            )
        except CanonicalJSONError as e:
            raise StatementFormatError(f"statement cannot be serialized: {e.message}") from e

    def _check(self) -> None:
        """Check the fields and freeze the mappings (shallowly: the bytes are what counts)."""
        subjects = tuple(self.subjects)
        if not subjects:
            raise StatementFormatError("statement has no subjects", hint="name at least one")
        if not all(isinstance(s, Subject) for s in subjects):
            raise StatementFormatError("statement subjects must be Subject values")
        if not isinstance(self.predicate_type, str) or not self.predicate_type:
            raise StatementFormatError(
                f"statement predicateType must be a non-empty string, got {self.predicate_type!r}"
            )
        if not isinstance(self.predicate, Mapping):
            raise StatementFormatError(
                f"statement predicate must be a JSON object, got {type(self.predicate).__name__}"
            )
        clash = _KNOWN_STATEMENT_FIELDS & set(self.unrecognized)
        if clash:
            raise StatementFormatError(
                f"statement unrecognized fields may not include {', '.join(sorted(clash))}"
            )
        object.__setattr__(self, "subjects", subjects)
        if not isinstance(self.predicate, _Parsed):  # read-only already, and not yet parsed
            object.__setattr__(self, "predicate", _frozen(self.predicate))
        object.__setattr__(self, "unrecognized", _frozen(self.unrecognized))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.unrecognized)
        out.update(
            {
                "_type": STATEMENT_TYPE,
                "subject": [s.to_dict() for s in self.subjects],
                "predicateType": self.predicate_type,
                "predicate": _thaw(self.predicate),
            }
        )
        return out

    def to_bytes(self) -> bytes:
        """RFC 8785 canonical JSON: the same statement always gives the same bytes."""
        return self._bytes

    def _canonical(self) -> bytes:
        try:
            return canonical.dumps(self.to_dict())
        except CanonicalJSONError as e:
            raise StatementFormatError(f"statement cannot be serialized: {e.message}") from e

    def digest(self) -> Digest:
        return Digest.of_bytes(self.to_bytes())

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    @classmethod
    def from_bytes(
        cls, data: bytes, *, limit: int = STATEMENT_LIMIT, source: str = "statement"
    ) -> Statement:
        """Parse a statement strictly; errors name ``source`` and the offending field."""
        if len(data) > limit:
            raise StatementTooLargeError(
                f"{source}: {len(data)} bytes exceeds the statement size limit of {limit} bytes"
            )
        try:
            doc = canonical.loads(data, limit=limit, source=source)
        except CanonicalJSONError as e:
            raise StatementFormatError(e.message, hint="expected an in-toto Statement") from e
        return cls.from_dict(doc, source=source)

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "statement") -> Statement:
        if not isinstance(doc, dict):
            raise StatementFormatError(
                f"{source}: a statement must be a JSON object, got {type(doc).__name__}"
            )
        type_ = doc.get("_type")
        if type_ != STATEMENT_TYPE:
            raise StatementFormatError(
                f"{source}: _type is {type_!r}, expected {STATEMENT_TYPE!r}",
                hint="only in-toto Statement v1 is accepted",
            )
        raw_subjects = doc.get("subject")
        if not isinstance(raw_subjects, list) or not raw_subjects:
            raise StatementFormatError(
                f"{source}: subject must be a non-empty array, got {raw_subjects!r}",
                hint="a statement must name at least one subject by digest",
            )
        subjects = tuple(
            _subject_from_dict(raw, f"{source}: subject[{i}]") for i, raw in enumerate(raw_subjects)
        )
        predicate_type = doc.get("predicateType")
        if not isinstance(predicate_type, str) or not predicate_type:
            raise StatementFormatError(
                f"{source}: predicateType must be a non-empty string, got {predicate_type!r}"
            )
        predicate = doc.get("predicate")
        if predicate is None:
            predicate = {}
        elif not isinstance(predicate, dict):
            raise StatementFormatError(
                f"{source}: predicate must be a JSON object, got {type(predicate).__name__}"
            )
        unrecognized = {k: v for k, v in doc.items() if k not in _KNOWN_STATEMENT_FIELDS}
        try:
            return cls(subjects, predicate_type, predicate, unrecognized)
        except StatementFormatError as e:
            raise StatementFormatError(f"{source}: {e.message}", hint=e.hint) from e


def _subject_from_dict(raw: Any, where: str) -> Subject:
    if not isinstance(raw, dict):
        raise StatementFormatError(f"{where}: must be an object, got {type(raw).__name__}")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise StatementFormatError(f"{where}: name must be a string, got {name!r}")
    if "digest" not in raw:
        raise StatementFormatError(f"{where}: digest is missing", hint="subjects need a digest")
    _check_digest_set(raw["digest"], where)
    extra = {k: v for k, v in raw.items() if k not in _KNOWN_SUBJECT_FIELDS}
    return Subject(name=name, digest=raw["digest"], unrecognized=extra)


def _thaw(value: Any) -> Any:
    """Plain dicts for the serializer, whatever read-only mappings the caller handed in."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


def sign_statement(statement: Statement, keys: Signer | Iterable[Signer]) -> dsse.Envelope:
    """Sign a statement's canonical bytes as a DSSE envelope of type :data:`PAYLOAD_TYPE`."""
    return dsse.sign(statement.to_bytes(), PAYLOAD_TYPE, keys)


def verify_statement(
    envelope: dsse.Envelope,
    keys: dsse.TrustedKeys,
    *,
    threshold: int = 1,
    predicate_type: str | None = None,
) -> Statement:
    """Verify ``envelope`` (see :func:`bundles.dsse.verify`), then parse the exact payload
    bytes that were verified as a statement, checking its predicate type when given."""
    verified = dsse.verify(envelope, keys, threshold=threshold, payload_type=PAYLOAD_TYPE)
    statement = Statement.from_bytes(verified.payload, source="signed statement")
    if predicate_type is not None and statement.predicate_type != predicate_type:
        raise PredicateTypeMismatchError(
            f"signed statement has predicateType {statement.predicate_type!r}, "
            f"expected {predicate_type!r}",
            hint="this attestation is not the kind expected here",
        )
    return statement
