"""Finding libtsm: the search order, one actionable error, the version
check. Each case imports the package in a fresh interpreter."""
import os
import shutil
import subprocess
import sys

import pytest

import tsm
from tsm import _lib
from conftest import LIMIT, PKG_ROOT


def run_python(code, env, cwd=None):
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=LIMIT * 3)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TSM_LIBRARY", "TSM_BUILD_DIR", "LD_LIBRARY_PATH",
                        "PYTHONPATH")}
    env.update(extra)
    return env


@pytest.fixture
def copied_pkg(tmp_path):
    """The package alone, outside the source tree."""
    shutil.copytree(os.path.join(PKG_ROOT, "tsm"), tmp_path / "tsm",
                    ignore=shutil.ignore_patterns("__pycache__", "libtsm.so*"))
    return tmp_path


def test_bad_tsm_library_is_an_actionable_import_error(tmp_path):
    r = run_python("import tsm", clean_env(
        PYTHONPATH=PKG_ROOT, TSM_LIBRARY=str(tmp_path / "nope.so")))
    assert r.returncode != 0
    assert "ImportError" in r.stderr
    assert "TSM_LIBRARY" in r.stderr and "nope.so" in r.stderr
    assert "meson setup build && ninja -C build" in r.stderr


def test_not_found_names_every_place(copied_pkg):
    r = run_python("import tsm", clean_env(
        PYTHONPATH=str(copied_pkg), TSM_BUILD_DIR=str(copied_pkg / "nobuild")))
    if r.returncode == 0:
        pytest.skip("libtsm is installed system-wide")
    err = r.stderr
    assert "libtsm.so not found" in err
    for place in ("TSM_LIBRARY: not set", "$TSM_BUILD_DIR",
                  str(copied_pkg / "nobuild"), "dynamic loader"):
        assert place in err, place
    assert "meson setup build && ninja -C build" in err


def test_bundled_library_is_found_first(copied_pkg):
    real = os.path.realpath(tsm.library_path)
    shutil.copy(real, copied_pkg / "tsm" / "libtsm.so.0")
    r = run_python("import tsm; print(tsm.library_path)",
                   clean_env(PYTHONPATH=str(copied_pkg)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(copied_pkg / "tsm" / "libtsm.so.0")


def test_tsm_build_dir(copied_pkg):
    real = os.path.realpath(tsm.library_path)
    libdir = os.path.dirname(real)
    if os.path.basename(libdir) != "libtsm":
        pytest.skip("the library under test is not in a build tree")
    build = os.path.dirname(libdir)
    r = run_python("import tsm; print(tsm.library_path)",
                   clean_env(PYTHONPATH=str(copied_pkg), TSM_BUILD_DIR=build))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.path.join(build, "libtsm", "libtsm.so")


def test_version_mismatch_is_refused(monkeypatch):
    class Stub:
        @staticmethod
        def tsm_version():
            return b"9.3.1"
    monkeypatch.setattr(_lib, "fast", Stub)
    with pytest.raises(ImportError) as ei:
        _lib._check_version("/x/libtsm.so")
    msg = str(ei.value)
    assert "9.3.1" in msg and "0.1" in msg and "TSM_LIBRARY" in msg


def test_loaded_version_matches():
    assert tuple(int(x) for x in tsm.version().split(".")[:2]) == \
        _lib.EXPECTED_VERSION
