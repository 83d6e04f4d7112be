"""Order properties of every scheme on generated versions: for any versions a, b, c, exactly
one of a < b, a == b, a > b holds; the order is antisymmetric and transitive; equal versions
hash alike. dpkg is also checked against python-debian's independent implementation."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise, permutations

from debian.debian_support import version_compare
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.versions import Version, VersionScheme, scheme_for, scheme_names

_digits = st.integers(min_value=0, max_value=12).map(str)
_word = st.sampled_from(["a", "b", "rc", "alpha", "beta", "pre", "p", "git", "sp", "x", "ga"])


def _joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


def _opt(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), strategy)


_release = st.lists(_digits, min_size=1, max_size=4).map(".".join)
_semver_core = st.tuples(_digits, _digits, _digits).map(".".join)
_semver_pre_id = st.one_of(_digits, _word, _joined(_word, _digits))
_semver = _joined(
    _semver_core,
    _opt(st.lists(_semver_pre_id, min_size=1, max_size=3).map(lambda ids: "-" + ".".join(ids))),
    _opt(st.just("+build.1")),
)

STRATEGIES: dict[str, st.SearchStrategy[str]] = {
    "dpkg": _joined(
        _opt(_digits.map(lambda d: d + ":")),
        _digits,
        st.text("0123456789abz.+~", max_size=6),
        _opt(st.text("0123456789abz.+~", min_size=1, max_size=5).map(lambda r: "-" + r)),
    ),
    "rpm": _joined(
        _opt(_digits.map(lambda d: d + ":")),
        st.text("0123456789abzZ._+~^", min_size=1, max_size=8).filter(lambda s: s[0] != "-"),
        _opt(st.text("0123456789abz._~^", min_size=1, max_size=5).map(lambda r: "-" + r)),
    ),
    "apk": _joined(
        _release,
        _opt(st.sampled_from("abz")),
        st.lists(
            _joined(
                st.sampled_from(["_alpha", "_beta", "_pre", "_rc", "_p", "_git"]), _opt(_digits)
            ),
            max_size=2,
        ).map("".join),
        _opt(st.sampled_from(["~abc1", "~0f"])),
        _opt(_digits.map(lambda d: "-r" + d)),
    ),
    "pep440": _joined(
        _opt(_digits.map(lambda d: d + "!")),
        _release,
        _opt(_joined(st.sampled_from(["a", "b", "rc"]), _digits)),
        _opt(_digits.map(lambda d: ".post" + d)),
        _opt(_digits.map(lambda d: ".dev" + d)),
        _opt(st.sampled_from(["+local", "+1.abc"])),
    ),
    "semver": _semver,
    "npm": _semver,
    "cargo": _semver,
    "go": _joined(
        st.just("v"),
        _semver_core,
        _opt(
            st.one_of(
                st.lists(_semver_pre_id, min_size=1, max_size=2).map(lambda i: "-" + ".".join(i)),
                st.just("-0.20191109021931-daa7c04131f5"),
                st.just("-20200101000000-000000000000"),
            )
        ),
        _opt(st.just("+incompatible")),
    ),
    "maven": st.lists(
        st.one_of(_digits, _word, st.sampled_from(["SNAPSHOT", "Final", "m", "cr", "milestone"])),
        min_size=1,
        max_size=5,
    ).flatmap(
        lambda parts: st.lists(
            st.sampled_from([".", "-", ""]), min_size=len(parts) - 1, max_size=len(parts) - 1
        ).map(lambda seps: parts[0] + "".join(s + p for s, p in zip(seps, parts[1:], strict=True)))
    ),
    "rubygems": _joined(
        _release,
        st.lists(st.one_of(_digits, _word, _joined(_word, _digits)), max_size=3).map(
            lambda segs: "".join("." + s for s in segs)
        ),
        _opt(_word.map(lambda w: "-" + w)),
    ),
    "nuget": _joined(
        st.lists(_digits, min_size=1, max_size=4).map(".".join),
        _opt(
            st.lists(st.one_of(_digits, _word, _word.map(str.upper)), min_size=1, max_size=3).map(
                lambda ids: "-" + ".".join(ids)
            )
        ),
    ),
}


def _check_order(scheme: VersionScheme, texts: list[str]) -> None:
    versions: list[Version] = [scheme.parse(t) for t in texts]
    for a, b in permutations(versions, 2):
        outcomes = [a < b, a == b, a > b]
        assert outcomes.count(True) == 1, (a.text, b.text)
        assert (a < b) == (b > a)
        assert (a <= b) == (a < b or a == b)
        assert scheme.compare(a, b) == -scheme.compare(b, a)
        if a == b:
            assert hash(a) == hash(b)
    for a, b, c in permutations(versions, 3):
        if a <= b and b <= c:
            assert a <= c, (a.text, b.text, c.text)
        if a == b and b == c:
            assert a == c
    ordered = sorted(versions)
    assert all(x <= y for x, y in pairwise(ordered))


def _property(name: str) -> Callable[[], None]:
    scheme = scheme_for(name)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(STRATEGIES[name], min_size=2, max_size=6))
    def test(texts: list[str]) -> None:
        _check_order(scheme, texts)

    test.__name__ = f"test_total_order_{name}"
    return test


test_total_order_dpkg = _property("dpkg")
test_total_order_rpm = _property("rpm")
test_total_order_apk = _property("apk")
test_total_order_pep440 = _property("pep440")
test_total_order_semver = _property("semver")
test_total_order_npm = _property("npm")
test_total_order_cargo = _property("cargo")
test_total_order_go = _property("go")
test_total_order_maven = _property("maven")
test_total_order_rubygems = _property("rubygems")
test_total_order_nuget = _property("nuget")


def test_every_scheme_has_a_property_test() -> None:
    assert set(STRATEGIES) == set(scheme_names())


@settings(max_examples=500, deadline=None)
@given(STRATEGIES["dpkg"], STRATEGIES["dpkg"])
def test_dpkg_agrees_with_python_debian(a: str, b: str) -> None:
    dpkg = scheme_for("dpkg")
    assert dpkg.compare(a, b) == max(-1, min(1, version_compare(a, b)))
