"""Go module versions: golang.org/x/mod/semver's documented behaviour and pseudo-versions."""

from __future__ import annotations

import pytest

from appliance.versions import InvalidVersion, scheme_for
from appliance.versions.golang import is_pseudo_version

GO = scheme_for("go")

PSEUDO_BASE = "v0.0.0-20191109021931-daa7c04131f5"
PSEUDO_AFTER_RELEASE = "v1.2.4-0.20191109021931-daa7c04131f5"
PSEUDO_AFTER_PRE = "v1.2.3-pre.0.20191109021931-daa7c04131f5"


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("v1.0.0-alpha", "v1.0.0-alpha.1"),
        ("v1.0.0-alpha.1", "v1.0.0-alpha.beta"),
        ("v1.0.0-alpha.beta", "v1.0.0-beta"),
        ("v1.0.0-beta", "v1.0.0-beta.2"),
        ("v1.0.0-beta.2", "v1.0.0-beta.11"),
        ("v1.0.0-beta.11", "v1.0.0-rc.1"),
        ("v1.0.0-rc.1", "v1.0.0"),
        ("v1.0.0", "v1.0.1"),
        ("v1.9.0", "v1.10.0"),
        # pseudo-versions sort as pre-releases of the next version
        (PSEUDO_BASE, "v0.0.1"),
        (PSEUDO_BASE, "v0.0.0"),
        ("v1.2.3", PSEUDO_AFTER_RELEASE),
        (PSEUDO_AFTER_RELEASE, "v1.2.4"),
        ("v1.2.3-pre", PSEUDO_AFTER_PRE),
        (PSEUDO_AFTER_PRE, "v1.2.3"),
        ("v0.0.0-20191109021931-daa7c04131f5", "v0.0.0-20200101000000-000000000000"),
        ("v2.0.0+incompatible", "v2.0.1+incompatible"),
        # OSV records write Go versions without the "v"
        ("0.9.0", "v1.0.0"),
    ],
)
def test_order(low: str, high: str) -> None:
    assert GO.parse(low) < GO.parse(high)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("v1.2", "v1.2.0"),
        ("v1", "v1.0.0"),
        ("v1.2.3+meta", "v1.2.3"),
        ("v2.0.0+incompatible", "v2.0.0"),
        ("1.2.3", "v1.2.3"),
    ],
)
def test_equal(a: str, b: str) -> None:
    assert GO.parse(a) == GO.parse(b)


@pytest.mark.parametrize(
    "text",
    ["v1.2.3.4", "v01.2.3", "v1.2.3-01", "v1.2.3-", "v1.2.3+", "1.2", "latest", "", "vv1.0.0"],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidVersion, match="go version"):
        GO.parse(text)


@pytest.mark.parametrize(
    ("text", "pseudo"),
    [
        (PSEUDO_BASE, True),
        (PSEUDO_AFTER_RELEASE, True),
        (PSEUDO_AFTER_PRE, True),
        ("v2.0.0-20191109021931-daa7c04131f5+incompatible", True),
        ("v2.0.1-0.20191109021931-daa7c04131f5+incompatible", True),
        ("v1.2.3", False),
        ("v1.2.3-pre", False),
        ("v1.2.3-20191109021931", False),
    ],
)
def test_pseudo_version_shape(text: str, pseudo: bool) -> None:
    assert is_pseudo_version(text) is pseudo
