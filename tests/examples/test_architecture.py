"""The architecture's rules are code: import-linter contracts, checked on every test run."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_import_contract_is_kept() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    result = lint_imports()
    assert result.returncode == 0, result.stdout
    for contract in config["contracts"]:
        assert f"{contract['name']} KEPT" in result.stdout
    assert f"Contracts: {len(config['contracts'])} kept, 0 broken." in result.stdout


def test_a_business_service_importing_a_driver_breaks_the_build(tmp_path: Path) -> None:
    package = tmp_path / "rogue_service"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shortcut.py").write_text("import sqlalchemy  # reads the orders table directly\n")
    (tmp_path / "contracts.toml").write_text(
        "[tool.importlinter]\n"
        'root_packages = ["rogue_service"]\n'
        "include_external_packages = true\n\n"
        "[[tool.importlinter.contracts]]\n"
        'name = "Business services never touch a database driver or ORM"\n'
        'type = "forbidden"\n'
        'source_modules = ["rogue_service"]\n'
        'forbidden_modules = ["sqlalchemy", "asyncpg", "pymongo"]\n'
    )
    env = os.environ | {"PYTHONPATH": str(tmp_path)}
    result = lint_imports("--config", str(tmp_path / "contracts.toml"), cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "rogue_service.shortcut -> sqlalchemy" in result.stdout
