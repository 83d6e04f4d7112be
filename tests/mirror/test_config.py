"""mirror.toml: good configs load; each bad value is one line naming file, source and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mirror.cli import cli
from mirror.config import SourceKind, load_config
from mirror.errors import MirrorConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "feeds").mkdir(exist_ok=True)
    (tmp_path / "feeds" / "kev.json").write_text("{}")
    path = tmp_path / "mirror.toml"
    path.write_text(text)
    return path


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[[source]]\nname = "kev"\nkind = "kev"\npath = "feeds/kev.json"\n')
    config = load_config(cfg)
    [src] = config.sources
    assert src.kind is SourceKind.KEV
    assert src.path == tmp_path / "feeds" / "kev.json"


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "examples" / "mirror.toml")
    assert {s.kind for s in config.sources} == set(SourceKind)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('name = "x"\nkind = "nvd"\npath = "feeds/kev.json"',
         "source 'x': field 'kind': unknown kind 'nvd' (use one of: osv, debian-tracker, "
         "alpine-secdb, kev, epss, openvex, policy, rubysec, npm-legacy, redhat-csaf, rocky-osv, "
         "alma-osv, ubuntu-osv, wolfi-secdb, chainguard-secdb, ghsa, cve, reachability-curated)"),
        ('name = "x"\nkind = "kev"\npath = "feeds/kev.json"\nurl = "https://example.org/k.json"',
         "source 'x': field 'url': both 'url' and 'path' are set (keep exactly one of them)"),
        ('name = "x"\nkind = "kev"',
         "source 'x': field 'url': neither 'url' nor 'path' is set (give an HTTP(S) url or a "
         "local path)"),
        ('name = "x"\nkind = "kev"\npath = "feeds/missing.json"',
         "source 'x': field 'path': {dir}/feeds/missing.json does not exist (fix the path "
         "(relative to the config))"),
        ('name = "x"\nkind = "kev"\nurl = "ftp://example.org/k.json"',
         "source 'x': field 'url': not an http(s) URL: 'ftp://example.org/k.json'"),
        ('name = "x"\nkind = "kev"\npath = "feeds/kev.json"\nsha256 = "abc"',
         "source 'x': field 'sha256': not a sha256 hex digest: 'abc'"),
        ('name = "x"\nkind = "kev"\npath = "feeds/kev.json"\nmax_size = -1',
         "source 'x': field 'max_size': must be a positive number of bytes, got -1"),
        ('name = "x"\nkind = "kev"\npath = "feeds/kev.json"\nretry = 3',
         "source 'x': field 'retry': unknown field (known fields: checksum_url, kind, "
         "max_size, name, path, retries, sha256, timeout, url)"),
        ('name = "Bad Name"\nkind = "kev"\npath = "feeds/kev.json"',
         "source #1: field 'name': missing or invalid value 'Bad Name' (use lowercase a-z, "
         "0-9, . _ -)"),
    ],
)  # fmt: skip
def test_bad_values_give_one_clear_line(tmp_path: Path, body: str, message: str) -> None:
    cfg = write(tmp_path, f"[[source]]\n{body}\n")
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "home"), "sync", "--config", str(cfg)]
    )
    assert result.exit_code == 2
    expected = f"stella-mirror: error: {cfg}: " + message.format(dir=tmp_path)
    assert result.stderr.splitlines() == [expected]


def test_duplicate_names_and_bad_toml(tmp_path: Path) -> None:
    one = '[[source]]\nname = "x"\nkind = "kev"\npath = "feeds/kev.json"\n'
    cfg = write(tmp_path, one + one)
    with pytest.raises(MirrorConfigError, match="source 'x': field 'name': duplicate"):
        load_config(cfg)
    cfg.write_text("[[source]\n")
    with pytest.raises(MirrorConfigError, match="not valid TOML"):
        load_config(cfg)
    with pytest.raises(MirrorConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_unknown_source_name_on_the_command_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[[source]]\nname = "x"\nkind = "kev"\npath = "feeds/kev.json"\n')
    result = CliRunner().invoke(
        cli, ["--home", str(tmp_path / "h"), "sync", "--config", str(cfg), "--source", "y"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"stella-mirror: error: {cfg}: no source named 'y' (configured sources: x)"
    )
