"""A plain `pip install` gives every command `fhir3t --help` lists (issue 26): built from scratch in a fresh
virtualenv (no system site-packages, pip's own cache reused), the way a hospital's integration engineer
installs it and the Docker image does (a wheel, profiles from its data files, not the checkout).

- every subcommand's --help works;
- the image's entrypoint (deploy/docker-entrypoint.sh), run outside Docker against that install, screens the
  bundled samples with exit 0: the smoke test CI can run where no Docker daemon exists;
- with an extra's packages removed, every subcommand that needs them says which extra to install in one
  sentence and exits 2 (never 70, "internal error").
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES
from fhir3t.cli import build_parser
from fhir3t.cli.extras import COMMAND_EXTRAS, EXTRAS

pytestmark = pytest.mark.slow

ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Iterator[Path]:
    """A virtualenv with `pip install <a copy of the source>` and nothing else (the default install)."""
    base = tmp_path_factory.mktemp("fresh-install")
    src = base / "src-copy"  # pip builds in the tree it is given: keep build/ out of the checkout
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("src", "profiles"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    pip = subprocess.run([str(_bin(venv, "python")), "-m", "pip", "install", "-q", "--no-compile",
                          "--disable-pip-version-check", str(src)], capture_output=True, text=True, timeout=900)
    if pip.returncode != 0:
        pytest.fail(f"pip install of the source failed:\n{pip.stderr[-3000:]}", pytrace=False)
    yield venv


def run(venv: Path, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR3T_", "VIRTUAL_ENV", "PYTHONPATH"))}
    full.update({"FHIR3T_CONFIG": "none", "PATH": f"{_bin(venv, 'x').parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    full.update(env or {})
    return subprocess.run(list(argv), capture_output=True, text=True, env=full, timeout=300, cwd=cwd)


def subcommands() -> list[str]:
    return sorted(build_parser()._defaults["_commands"])


def test_every_subcommand_help_works_on_a_plain_install(fresh, tmp_path):
    names = subcommands()
    assert {"screen", "serve", "watch", "codes", "safety", "report"} <= set(names)
    top = run(fresh, str(_bin(fresh, "fhir3t")), "--help", cwd=tmp_path)
    assert top.returncode == 0 and all(n in top.stdout for n in names), top.stderr
    for name in names:
        r = run(fresh, str(_bin(fresh, "fhir3t")), name, "--help", cwd=tmp_path)
        assert r.returncode == 0, f"{name} --help: exit {r.returncode}: {r.stderr[-1500:]}"
        assert r.stdout.startswith(f"usage: fhir3t {name}"), r.stdout[:200]
        assert r.stderr == ""


def test_the_image_entrypoint_screens_the_samples_on_the_installed_wheel(fresh, tmp_path):
    """The Dockerfile's smoke test without Docker: the same script, an install without the checkout's profiles."""
    r = run(fresh, "sh", str(ENTRYPOINT), "smoke", cwd=tmp_path,
            env={"FHIR3T_SAMPLES": str(SAMPLES), "FHIR3T_SECRETS": str(tmp_path / "no-secrets"),
                 "FHIR3T_PYTHON": str(_bin(fresh, "python"))})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = r.stdout.lstrip("\ufeff").splitlines()
    assert rows[0].startswith("patient,display_id,status") and len(rows) == 26
    assert "Patient/p01,MRN-100001,eligible" in r.stdout
    # the profiles came from the wheel's data files, not from this checkout
    where = run(fresh, str(_bin(fresh, "python")), "-c", "from fhir3t.profiles import profile_path; print(profile_path('study.json'))",
                cwd=tmp_path)
    assert where.returncode == 0 and str(fresh) in where.stdout and str(ROOT) not in where.stdout


def test_a_command_whose_extra_is_missing_says_which_in_one_sentence_and_exits_2(fresh, tmp_path):
    assert COMMAND_EXTRAS, "no subcommand needs an extra: this test would test nothing"
    modules = sorted({m for extras in COMMAND_EXTRAS.values() for e in extras for m in EXTRAS[e].modules})
    present = run(fresh, str(_bin(fresh, "python")), "-c", f"import {', '.join(modules)}", cwd=tmp_path)
    assert present.returncode == 0, f"the default install lacks {modules}: {present.stderr}"
    gone = run(fresh, str(_bin(fresh, "python")), "-m", "pip", "uninstall", "-y", "-q", *modules, cwd=tmp_path)
    assert gone.returncode == 0, gone.stderr
    try:
        for name, extras in sorted(COMMAND_EXTRAS.items()):
            argv = [name, "--server", "http://127.0.0.1:9/fhir"] if name == "watch" else [name]
            r = run(fresh, str(_bin(fresh, "fhir3t")), *argv, cwd=tmp_path)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2, f"{name}: exit {r.returncode}: {r.stderr[-1500:]}"
            assert len(lines) == 1 and f'pip install "fhir3t[{extras[0]}]"' in lines[0], r.stderr
            assert lines[0].startswith(f"fhir3t {name}: ") and "internal error" not in lines[0]
            assert r.stdout == ""
            help_ = run(fresh, str(_bin(fresh, "fhir3t")), name, "--help", cwd=tmp_path)
            assert help_.returncode == 0  # --help needs no extra
    finally:  # the module's venv is shared: put them back for any test that follows
        run(fresh, str(_bin(fresh, "python")), "-m", "pip", "install", "-q", "--disable-pip-version-check", *modules)
