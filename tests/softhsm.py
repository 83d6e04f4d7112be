"""A real SoftHSM2 token store for tests, made in a temporary directory.

SoftHSM2 reads ``$SOFTHSM2_CONF`` when a process first initializes the module, so one store
serves the whole test process: :func:`softhsm` makes it once (tokens included) and points the
environment at it. Tests use their own key labels in the shared tokens; the ``pin-test`` token
is kept for wrong-PIN checks, which need a token no signer of this process is logged in to.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

import pytest

MODULE: Final = Path("/usr/lib/softhsm/libsofthsm2.so")
SO_PIN: Final = "so-pin-8842"
PIN: Final = "user-pin-4711-stella"  # distinctive, so a test can look for it in stored files
TOKENS: Final = ("stella", "pin-test")


@dataclass(frozen=True, slots=True)
class SoftHsm:
    root: Path
    conf: Path

    def uri(
        self,
        obj: str,
        *,
        token: str = "stella",  # noqa: S107 - a token label, not a secret
        pin_source: Path | None = None,
        module: Path = MODULE,
        extra: str = "",
    ) -> str:
        query = f"module-path={quote(str(module), safe='/')}"
        if pin_source is not None:
            query += f"&pin-source=file:{quote(str(pin_source), safe='/')}"
        return f"pkcs11:token={token};object={obj}{extra}?{query}"

    def pin_file(self, directory: Path, pin: str = PIN) -> Path:
        path = directory / "token.pin"
        path.write_text(pin + "\n")
        path.chmod(0o600)
        return path


_made: SoftHsm | None = None


def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """The process's SoftHSM2 store with its tokens initialized (made on first use)."""
    global _made
    if _made is not None:
        return _made
    util = shutil.which("softhsm2-util")
    if util is None or not MODULE.is_file():
        pytest.fail("SoftHSM2 is not installed: run 'make sysdeps' (Debian package softhsm2)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\n"
        "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in TOKENS:
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    _made = SoftHsm(root, conf)
    return _made
