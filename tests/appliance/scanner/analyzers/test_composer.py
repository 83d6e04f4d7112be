from __future__ import annotations

import pytest

from appliance.scanner.analyzers.composer import ComposerAnalyzer
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import by_name, fixture_bytes, run

INSTALLED = "var/www/html/vendor/composer/installed.json"


def test_composer_2_installed_json() -> None:
    result = run(ComposerAnalyzer(), INSTALLED, fixture_bytes("php", INSTALLED))
    assert result.unknowns == ()
    packages = by_name(result)
    assert sorted(packages) == ["monolog/monolog", "psr/log"]  # phpunit is dev-only
    monolog = packages["monolog/monolog"]
    assert monolog.type is PackageType.COMPOSER
    assert (monolog.version, monolog.licenses, monolog.dependencies) == (
        "3.5.0",
        ("MIT",),
        ("psr/log",),  # "php" is a platform requirement, not a package
    )
    assert monolog.locations == (INSTALLED,)


def test_composer_1_list_and_bad_entries() -> None:
    data = b'[{"name": "a/b", "version": "1.0.0", "license": "MIT"}, {"name": "c/d"}, 3]'
    result = run(ComposerAnalyzer(), "vendor/composer/installed.json", data)
    assert [(p.name, p.licenses) for p in result.packages] == [("a/b", ("MIT",))]
    assert [u.reason for u in result.unknowns] == [
        "entry #1: installed.json entry lacks name or version: name='c/d'",
        "installed.json entry #2 is not an object",
    ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "installed.json is not valid JSON"),
        (b'{"packages": 3}', "holds neither a package list nor a 'packages' list"),
    ],
)
def test_unreadable_installed_json(data: bytes, reason: str) -> None:
    result = run(ComposerAnalyzer(), "vendor/composer/installed.json", data)
    assert reason in result.unknowns[0].reason


def test_required() -> None:
    analyzer = ComposerAnalyzer()
    assert analyzer.required("vendor/composer/installed.json", 0o100644)
    assert analyzer.required("srv/app/vendor/composer/installed.json", 0o100644)
    assert not analyzer.required("srv/app/vendor/composer/installed.php", 0o100644)
    assert not analyzer.required("srv/app/myvendor/composer/installed.json", 0o100644)
