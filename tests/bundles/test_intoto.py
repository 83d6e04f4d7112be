"""in-toto Statement v1: round trips, byte determinism, strict parsing, signing and verifying."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import sigstore.dsse as sigstore_dsse
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from bundles import canonical
from bundles.digest import Digest
from bundles.dsse import (
    Envelope,
    InvalidSignatureError,
    PayloadTypeMismatchError,
    ThresholdError,
    sign,
)
from bundles.errors import SizeLimitError, StatementError
from bundles.intoto import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    PredicateTypeMismatchError,
    Statement,
    StatementFormatError,
    StatementTooLargeError,
    Subject,
    sign_statement,
    verify_statement,
)
from bundles.keys import KeyType, PrivateKey

HELLO = hashlib.sha256(b"hello\n").hexdigest()
PTYPE = "https://stella-ops.org/attestations/test/v1"
KEY = PrivateKey.generate()
ED_KEY = PrivateKey.generate(KeyType.ED25519)


def _statement(**predicate: Any) -> Statement:
    return Statement(
        subjects=(Subject("hello.txt", {"sha256": HELLO}), Subject.of("b", Digest("0" * 64))),
        predicate_type=PTYPE,
        predicate=predicate or {"n": 3},
    )


def test_constants() -> None:
    assert STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert PAYLOAD_TYPE == "application/vnd.in-toto+json"


def test_to_bytes_is_canonical_json() -> None:
    data = _statement().to_bytes()
    assert data == (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"n":3},'
        b'"predicateType":"https://stella-ops.org/attestations/test/v1",'
        b'"subject":[{"digest":{"sha256":"' + HELLO.encode() + b'"},"name":"hello.txt"},'
        b'{"digest":{"sha256":"' + b"0" * 64 + b'"},"name":"b"}]}'
    )
    assert canonical.is_canonical(data)


def test_round_trip() -> None:
    statement = _statement(n=3, nested={"list": [1, "two", None, True]}, f=1.5)
    parsed = Statement.from_bytes(statement.to_bytes())
    assert parsed == statement
    assert parsed.to_bytes() == statement.to_bytes()
    assert parsed.subjects[0].sha256 == Digest(HELLO)
    assert parsed.digest() == Digest.of_bytes(statement.to_bytes())
    assert hash(parsed) == hash(statement)


def test_bytes_do_not_depend_on_dict_order() -> None:
    a = Statement(
        (Subject("s", {"sha512": "a" * 128, "sha256": HELLO}),),
        PTYPE,
        {"b": 1, "a": {"y": 2, "x": 3}},
    )
    b = Statement(
        (Subject("s", {"sha256": HELLO, "sha512": "a" * 128}),),
        PTYPE,
        {"a": {"x": 3, "y": 2}, "b": 1},
    )
    assert a.to_bytes() == b.to_bytes()
    assert a == b


def test_integers_stay_integers() -> None:
    data = _statement(n=3, big=2**53 - 1, neg=-7).to_bytes()
    assert b'"n":3' in data
    assert b"3.0" not in data
    assert b'"big":9007199254740991' in data
    predicate = json.loads(data)["predicate"]
    assert type(predicate["n"]) is int
    assert Statement.from_bytes(data).predicate["n"] == 3


def test_unset_predicate_and_name() -> None:
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [{"digest": {"sha256": HELLO}}],
        "predicateType": "p",
    }
    statement = Statement.from_bytes(json.dumps(doc).encode())
    assert statement.predicate == {}
    assert statement.subjects[0].name == ""
    assert json.loads(statement.to_bytes())["subject"] == [{"digest": {"sha256": HELLO}}]


def test_unknown_fields_are_kept() -> None:
    """in-toto's parsing rules: consumers ignore unknown fields; we keep them for the round trip."""
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": "a", "digest": {"sha256": HELLO, "gitCommit": "abc"}, "uri": "pkg:x/a"}
        ],
        "predicateType": "p",
        "predicate": {},
        "https://example.com/extension": {"k": 1},
    }
    statement = Statement.from_bytes(json.dumps(doc).encode())
    assert statement.unrecognized == {"https://example.com/extension": {"k": 1}}
    assert statement.subjects[0].unrecognized == {"uri": "pkg:x/a"}
    assert json.loads(statement.to_bytes()) == doc


def _doc(**changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "a", "digest": {"sha256": HELLO}}],
        "predicateType": PTYPE,
        "predicate": {"n": 3},
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key.replace("type_", "_type"), None)
        else:
            doc[key.replace("type_", "_type")] = value
    return json.dumps(doc).encode()


MALFORMED = [
    pytest.param(b"[1]", "a statement must be a JSON object, got list", id="array"),
    pytest.param(b"{", "s.json: not valid JSON", id="not-json"),
    pytest.param(b'{"_type": 1, "_type": 2}', "duplicate JSON object key '_type'", id="dup"),
    pytest.param(_doc(type_=None), "_type is None, expected", id="no-type"),
    pytest.param(
        _doc(type_="https://in-toto.io/Statement/v0.1"),
        "_type is 'https://in-toto.io/Statement/v0.1', expected 'https://in-toto.io/Statement/v1'",
        id="v0.1",
    ),
    pytest.param(_doc(subject=[]), "subject must be a non-empty array, got []", id="empty"),
    pytest.param(_doc(subject=None), "subject must be a non-empty array, got None", id="none"),
    pytest.param(_doc(subject=["a"]), "subject[0]: must be an object, got str", id="str"),
    pytest.param(_doc(subject=[{"name": "a"}]), "subject[0]: digest is missing", id="no-digest"),
    pytest.param(
        _doc(subject=[{"name": 5, "digest": {"sha256": HELLO}}]),
        "subject[0]: name must be a string, got 5",
        id="name-number",
    ),
    pytest.param(
        _doc(subject=[{"name": "a", "digest": {}}]),
        "subject[0]: digest must be a non-empty object",
        id="empty-digest",
    ),
    pytest.param(
        _doc(subject=[{"name": "a", "digest": {"sha512": "a" * 128}}]),
        "subject[0]: digest has no sha256 (has sha512)",
        id="no-sha256",
    ),
    pytest.param(
        _doc(subject=[{"name": "a", "digest": {"sha256": HELLO.upper()}}]),
        f"subject[0]: bad sha256 digest '{HELLO.upper()}'",
        id="upper-hex",
    ),
    pytest.param(
        _doc(subject=[{"name": "a", "digest": {"sha256": "abc"}}]),
        "subject[0]: bad sha256 digest 'abc'",
        id="short-hex",
    ),
    pytest.param(
        _doc(subject=[{"name": "a", "digest": {"sha256": HELLO, "sha1": "xyz"}}]),
        "subject[0]: bad sha1 digest 'xyz'",
        id="bad-sha1",
    ),
    pytest.param(
        _doc(subject=[{"name": "a", "digest": {"sha256": 5}}]),
        "subject[0]: digest sha256 value must be a non-empty string, got 5",
        id="digest-number",
    ),
    pytest.param(
        _doc(subject=[{"name": "a", "digest": {"sha256": HELLO}}, {"digest": []}]),
        "subject[1]: digest must be a non-empty object",
        id="second-subject",
    ),
    pytest.param(_doc(predicateType=None), "predicateType must be a non-empty string", id="no-pt"),
    pytest.param(_doc(predicateType=""), "predicateType must be a non-empty string", id="pt-''"),
    pytest.param(_doc(predicate=[1]), "predicate must be a JSON object, got list", id="pred-list"),
    pytest.param(_doc(predicate={"n": 2**60}), "cannot be serialized", id="unsafe-integer"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_statements_rejected(data: bytes, message: str) -> None:
    with pytest.raises(StatementFormatError) as info:
        Statement.from_bytes(data, source="s.json")
    assert info.value.message.startswith("s.json: ")
    assert message in info.value.message


def test_malformed_baseline_parses() -> None:
    assert Statement.from_bytes(_doc()).predicate == {"n": 3}


def test_oversized_statement() -> None:
    data = _statement().to_bytes()
    with pytest.raises(StatementTooLargeError, match="exceeds the statement size limit"):
        Statement.from_bytes(data, limit=len(data) - 1)
    with pytest.raises(SizeLimitError):
        Statement.from_bytes(data, limit=10)


def test_constructor_validates() -> None:
    with pytest.raises(StatementFormatError, match="statement has no subjects"):
        Statement((), PTYPE, {})
    with pytest.raises(StatementFormatError, match="digest has no sha256"):
        Subject("a", {"sha1": "a" * 40})
    with pytest.raises(StatementFormatError, match="cannot be serialized"):
        Statement((Subject("a", {"sha256": HELLO}),), PTYPE, {"x": float("nan")})
    with pytest.raises(StatementFormatError, match="may not include predicate"):
        Statement((Subject("a", {"sha256": HELLO}),), PTYPE, {}, {"predicate": 1})


def test_statement_is_immutable() -> None:
    predicate = {"n": 3}
    statement = _statement(**predicate)
    predicate["n"] = 4
    assert statement.predicate["n"] == 3
    with pytest.raises(TypeError):
        statement.predicate["n"] = 5  # type: ignore[index]  # the read-only mapping refuses it


# --- signing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, ED_KEY], ids=["ecdsa-p256", "ed25519"])
def test_sign_and_verify(key: PrivateKey) -> None:
    statement = _statement()
    envelope = sign_statement(statement, key)
    assert envelope.payload == statement.to_bytes()
    assert envelope.payload_type == PAYLOAD_TYPE
    parsed = Envelope.from_json(envelope.to_json())
    assert verify_statement(parsed, [key.public_key], predicate_type=PTYPE) == statement


def test_verify_parses_the_exact_signed_bytes() -> None:
    """A statement signed in a non-canonical form (as sigstore-python writes it) is read as
    signed; nothing is re-serialized to check the signature."""
    crypto = ec.generate_private_key(ec.SECP256R1())
    key = PrivateKey(crypto)
    theirs = sigstore_dsse._sign(
        crypto,
        sigstore_dsse.StatementBuilder(
            subjects=[
                sigstore_dsse.Subject.model_validate({"name": "a", "digest": {"sha256": HELLO}})
            ],
            predicate_type=PTYPE,
            predicate={"n": 3},
        ).build(),
    )
    envelope = Envelope.from_json(theirs.to_json())
    assert not canonical.is_canonical(envelope.payload)
    statement = verify_statement(envelope, [key.public_key], predicate_type=PTYPE)
    assert statement.predicate == {"n": 3}
    assert statement.subjects == (Subject("a", {"sha256": HELLO}),)


def test_tampered_statement_is_rejected_before_parsing() -> None:
    envelope = sign_statement(_statement(), KEY)
    doc = json.loads(envelope.to_json())
    doc["payload"] = base64.b64encode(_statement(n=4).to_bytes()).decode()
    with pytest.raises(InvalidSignatureError):
        verify_statement(Envelope.from_json(json.dumps(doc)), [KEY.public_key])


def test_wrong_payload_type() -> None:
    envelope = sign(_statement().to_bytes(), "application/json", KEY)
    with pytest.raises(PayloadTypeMismatchError, match="expected 'application/vnd.in-toto"):
        verify_statement(envelope, [KEY.public_key])


def test_wrong_predicate_type() -> None:
    envelope = sign_statement(_statement(), KEY)
    with pytest.raises(PredicateTypeMismatchError) as info:
        verify_statement(envelope, [KEY.public_key], predicate_type="https://example.com/other")
    assert info.value.message == (
        f"signed statement has predicateType {PTYPE!r}, expected 'https://example.com/other'"
    )
    assert isinstance(info.value, StatementError)


def test_signed_garbage_is_a_statement_error() -> None:
    envelope = sign(b'{"_type": "nope"}', PAYLOAD_TYPE, KEY)
    with pytest.raises(StatementFormatError, match="signed statement: _type is 'nope'"):
        verify_statement(envelope, [KEY.public_key])


def test_statement_threshold() -> None:
    envelope = sign_statement(_statement(), [KEY, ED_KEY])
    keys = [KEY.public_key, ED_KEY.public_key]
    assert verify_statement(envelope, keys, threshold=2) == _statement()
    with pytest.raises(ThresholdError):
        verify_statement(sign_statement(_statement(), KEY), keys, threshold=2)


# JSON objects of safe values, as predicates
PREDICATES = st.dictionaries(
    st.text(max_size=10),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=10,
    ),
    max_size=5,
)


@given(predicate=PREDICATES)
def test_statement_bytes_round_trip(predicate: dict[str, Any]) -> None:
    statement = Statement((Subject("a", {"sha256": HELLO}),), PTYPE, predicate)
    data = statement.to_bytes()
    again = Statement.from_bytes(data)
    assert again == statement
    assert again.to_bytes() == data


@given(
    predicate=PREDICATES,
    predicate_type=st.text(min_size=1, max_size=20),
    name=st.text(max_size=10),
)
def test_statement_around_canonical_predicate_bytes_is_the_same_statement(
    predicate: dict[str, Any], predicate_type: str, name: str
) -> None:
    subjects = (Subject(name, {"sha256": HELLO}), Subject.of("b", Digest("0" * 64)))
    made = Statement(subjects, predicate_type, predicate)
    assembled = Statement.of_canonical(
        subjects, predicate_type, predicate, canonical.dumps(predicate)
    )
    assert assembled.to_bytes() == made.to_bytes()
    assert assembled == made
    assert assembled.digest() == made.digest()
    unread = Statement.of_canonical(subjects, predicate_type, None, canonical.dumps(predicate))
    assert unread.to_bytes() == made.to_bytes()
    assert dict(unread.predicate) == predicate  # parsed when read
    assert unread == made
    assert Statement.from_bytes(unread.to_bytes()) == made


def test_statement_around_predicate_bytes_checks_its_fields() -> None:
    subject = Subject("a", {"sha256": HELLO})
    with pytest.raises(StatementFormatError, match="predicateType must be a non-empty string"):
        Statement.of_canonical((subject,), "", {}, b"{}")
    with pytest.raises(StatementFormatError, match="no subjects"):
        Statement.of_canonical((), PTYPE, {}, b"{}")
    with pytest.raises(StatementFormatError, match="predicate bytes are not a JSON object"):
        Statement.of_canonical((subject,), PTYPE, {}, b"[]")
