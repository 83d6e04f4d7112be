"""The streaming tar reader's header checks: sizes in every encoding, extended headers under
their cap (which an operator can raise), and nothing read before a header is accepted."""

from __future__ import annotations

import io

import pytest

from bundles.tarstream import EXTENDED_HEADER, TarError, _number, read_tar
from tests.hostile.bundlekit import BLOCK, base256, ext, header, octal, pax


def _names(data: bytes) -> list[tuple[str, int]]:
    out = []
    for member, opener in read_tar(io.BytesIO(data), spool_limit=0):
        with opener() as fh:
            out.append((member.name, len(fh.read())))
    return out


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (octal(0), 0),
        (octal(1234), 1234),
        (base256(1 << 40), 1 << 40),
        (base256(-1), -1),
        (base256(-(1 << 40)), -(1 << 40)),
        (b"\xff" * 12, -1),
    ],
)
def test_numbers_in_every_encoding(field: bytes, value: int) -> None:
    assert _number(field) == value


def test_a_negative_size_is_refused_before_any_read() -> None:
    data = header("a", size_field=base256(-5)) + b"\0" * 4096
    with pytest.raises(TarError, match=r"negative size \(-5\)"):
        _names(data)


def test_pax_size_applies_and_is_checked() -> None:
    good = ext(b"x", pax({"size": "3"})) + header("a", 99) + b"abc" + b"\0" * (BLOCK - 3)
    assert _names(good) == [("a", 3)]
    for bad in ("-3", "3.0", "１２", ""):
        data = ext(b"x", pax({"size": bad})) + header("a", 3) + b"abc".ljust(BLOCK, b"\0")
        with pytest.raises(TarError, match="bad PAX size"):
            _names(data)


def test_extended_headers_are_capped_before_they_are_read() -> None:
    claim = header(b"././@LongLink", 1 << 40, typeflag=b"L")  # no data follows: never read
    with pytest.raises(TarError) as e:
        _names(claim)
    assert e.value.cap is EXTENDED_HEADER
    assert e.value.found == 1 << 40


def test_the_extended_header_cap_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    long_name = "d/" * (600 << 10) + "f"
    data = ext(b"x", pax({"path": long_name})) + header("short", 1) + b"z".ljust(BLOCK, b"\0")
    with pytest.raises(TarError, match="tar.extended_header_bytes cap of 1 MiB"):
        _names(data)
    monkeypatch.setenv(EXTENDED_HEADER.env, "4M")
    assert _names(data) == [(long_name, 1)]


def test_pax_records_that_lie_about_their_length() -> None:
    for records in (
        b"900 path=x\n",
        b"0 path=x\n",
        b"x path=y\n",
        b"99999999999999999999999 a=b\n",
    ):
        data = ext(b"x", records) + header("a", 0)
        with pytest.raises(TarError, match="bad PAX record length"):
            _names(data)
