from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from appliance.scanner.analyzers.interface import AnalyzerInput, ParseError
from appliance.scanner.analyzers.java import JavaAnalyzer, parse_manifest, parse_properties
from appliance.scanner.collect import run_analyzer
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import run

WAR = "usr/local/tomcat/webapps/shop.war"


def jar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def pom(group: str, artifact: str, version: str) -> bytes:
    return (
        f"#Created by Apache Maven 3.9.6\n#Tue Jan 09 10:00:00 UTC 2024\n"
        f"artifactId={artifact}\ngroupId={group}\nversion={version}\n"
    ).encode("latin-1")


MANIFEST_ONLY = (
    b"Manifest-Version: 1.0\r\nCreated-By: 17 (Eclipse Adoptium)\r\n"
    b"Implementation-Title: jakarta.annotation-api\r\n"
    b"Implementation-Version: 2.1.1\r\nImplementation-Vendor-Id: jakarta.annotation\r\n"
    b"Bundle-Description: Jakarta Annotations API with a long description that does not fit on\r\n"
    b"  one line\r\n\r\nName: jakarta/annotation/\r\nImplementation-Version: 9\r\n"
)


def build_war() -> bytes:
    log4j = jar(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\n\r\n",
            "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties": pom(
                "org.apache.logging.log4j", "log4j-core", "2.14.1"
            ),
            "org/apache/logging/log4j/core/Logger.class": b"\xca\xfe\xba\xbe",
        }
    )
    shaded = jar(
        {
            "META-INF/maven/com.example/fat/pom.properties": pom("com.example", "fat", "1.0"),
            "META-INF/maven/com.google.guava/guava/pom.properties": pom(
                "com.google.guava", "guava", "31.1-jre"
            ),
        }
    )
    inner_lib = jar(
        {"META-INF/maven/org.yaml/snakeyaml/pom.properties": pom("org.yaml", "snakeyaml", "1.33")}
    )
    with_nested = jar(
        {"lib/snakeyaml.jar": inner_lib, "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\n"}
    )
    return jar(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\n",
            "META-INF/maven/com.example.shop/shop/pom.properties": pom(
                "com.example.shop", "shop", "3.0.0"
            ),
            "WEB-INF/lib/log4j-core-2.14.1.jar": log4j,
            "WEB-INF/lib/fat-1.0.jar": shaded,
            "WEB-INF/lib/jakarta.annotation-api-2.1.1.jar": jar(
                {"META-INF/MANIFEST.MF": MANIFEST_ONLY}
            ),
            "WEB-INF/lib/mystery.jar": jar({"com/example/Mystery.class": b"\xca\xfe\xba\xbe"}),
            "WEB-INF/lib/broken.jar": b"PK\x03\x04 this is not really a zip",
            "WEB-INF/lib/outer.jar": with_nested,
            "index.html": b"<html></html>",
        }
    )


def test_war_with_nested_jars() -> None:
    result = run(JavaAnalyzer(), WAR, build_war())
    found = sorted((p.name, p.version, p.locations[0]) for p in result.packages)
    lib = f"{WAR}!/WEB-INF/lib"
    assert found == [
        ("com.example.shop:shop", "3.0.0", WAR),
        ("com.example:fat", "1.0", f"{lib}/fat-1.0.jar"),
        ("com.google.guava:guava", "31.1-jre", f"{lib}/fat-1.0.jar"),  # shaded
        (
            "jakarta.annotation:jakarta.annotation-api",
            "2.1.1",
            f"{lib}/jakarta.annotation-api-2.1.1.jar",
        ),
        ("org.apache.logging.log4j:log4j-core", "2.14.1", f"{lib}/log4j-core-2.14.1.jar"),
        ("org.yaml:snakeyaml", "1.33", f"{lib}/outer.jar!/lib/snakeyaml.jar"),
    ]
    assert all(p.type is PackageType.MAVEN for p in result.packages)
    unknowns = sorted((u.path, u.reason) for u in result.unknowns)
    assert unknowns == [
        (f"{lib}/broken.jar", "not a readable zip archive: File is not a zip file"),
        (f"{lib}/mystery.jar", "no Maven coordinates (pom.properties or manifest)"),
    ]


def test_streamed_from_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "app.jar"
    path.write_bytes(jar({"META-INF/maven/g/a/pom.properties": pom("g", "a", "1")}))
    inp = AnalyzerInput("app/app.jar", 0o100644, path.stat().st_size, lambda: path.open("rb"))
    result = run_analyzer(JavaAnalyzer(), inp)
    assert [(p.name, p.locations) for p in result.packages] == [("g:a", ("app/app.jar",))]


def test_nesting_depth_is_limited() -> None:
    data = jar({"META-INF/maven/g/a0/pom.properties": pom("g", "a0", "1")})
    for level in range(1, 7):
        data = jar(
            {
                "inner.jar": data,
                f"META-INF/maven/g/a{level}/pom.properties": pom("g", f"a{level}", "1"),
            }
        )
    result = run(JavaAnalyzer(), "app.jar", data)
    assert sorted(p.name for p in result.packages) == [f"g:a{n}" for n in range(2, 7)]
    assert len(result.unknowns) == 1
    assert "archives nested deeper than 4 are not opened" in result.unknowns[0].reason


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        (
            {"META-INF/maven/g/a/pom.properties": b"groupId=g\nartifactId=a\n"},
            "META-INF/maven/g/a/pom.properties lacks groupId, artifactId or version",
        ),
        ({"META-INF/MANIFEST.MF": b"no colon here\n"}, "is not 'Name: value'"),
    ],
)
def test_bad_metadata_is_unknown(members: dict[str, bytes], reason: str) -> None:
    result = run(JavaAnalyzer(), "app.jar", jar(members))
    assert any(reason in u.reason for u in result.unknowns), result.unknowns


def test_not_a_zip_is_unknown() -> None:
    result = run(JavaAnalyzer(), "app.jar", b"definitely not a zip")
    assert [(u.path, u.reason) for u in result.unknowns] == [
        ("app.jar", "not a readable zip archive: File is not a zip file")
    ]


def test_manifest_and_properties_parsers() -> None:
    manifest = parse_manifest(MANIFEST_ONLY)
    assert manifest["Bundle-Description"].endswith("does not fit on one line")
    assert manifest["Implementation-Version"] == "2.1.1"  # main section only
    assert parse_properties(b"# c\n! c\na = 1\nb:2\nc=x=y\nnovalue\n") == {
        "a": "1",
        "b": "2",
        "c": "x=y",
    }
    with pytest.raises(ParseError, match="is not UTF-8"):
        parse_manifest(b"\xff\n")


@pytest.mark.parametrize(
    ("path", "mode", "wanted"),
    [
        ("a/b.jar", 0o100644, True),
        ("a/b.WAR", 0o100644, True),
        ("a/b.ear", 0o100644, True),
        ("a/b.jar", 0o120777, False),
        ("a/b.zip", 0o100644, False),
    ],
)
def test_required(path: str, mode: int, wanted: bool) -> None:
    assert JavaAnalyzer().required(path, mode) is wanted
