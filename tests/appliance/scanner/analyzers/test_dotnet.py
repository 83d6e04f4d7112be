from __future__ import annotations

import pytest

from appliance.scanner.analyzers.dotnet import DotnetDepsAnalyzer
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import by_name, fixture_bytes, run

DEPS = "app/WebApp.deps.json"


def test_deps_json_packages_and_their_dependencies() -> None:
    result = run(DotnetDepsAnalyzer(), DEPS, fixture_bytes("dotnet", DEPS))
    assert result.unknowns == ()
    packages = by_name(result)
    assert sorted(packages) == ["Newtonsoft.Json", "Serilog"]  # WebApp is the project itself
    assert packages["Serilog"].type is PackageType.NUGET
    assert packages["Serilog"].version == "3.1.1"
    assert packages["Serilog"].dependencies == ("Newtonsoft.Json",)
    assert packages["Newtonsoft.Json"].locations == (DEPS,)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"nope", "deps.json is not valid JSON"),
        (b'{"targets": {}}', "deps.json has no 'libraries' object"),
        (b'{"libraries": {"NoVersion": {"type": "package"}}}', "'NoVersion' is not 'Name/Version'"),
    ],
)
def test_unreadable_deps_json(data: bytes, reason: str) -> None:
    result = run(DotnetDepsAnalyzer(), "app/x.deps.json", data)
    assert result.packages == ()
    assert reason in result.unknowns[0].reason
