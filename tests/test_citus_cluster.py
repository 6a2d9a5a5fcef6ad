"""make test-citus where no Citus build is found: one line, exit 0, no cluster (people outside this
team install Citus their own way); a CITUS_TARBALL that names nothing is a clear error instead."""

from __future__ import annotations

import importlib.util

import pytest

from todo_api.cli import PROJECT_ROOT


def load_harness():
    spec = importlib.util.spec_from_file_location("citus_cluster", PROJECT_ROOT / "scripts" / "citus_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_tarball_it_says_so_in_one_line_and_passes(tmp_path, monkeypatch, capsys):
    harness = load_harness()
    monkeypatch.delenv("CITUS_TARBALL", raising=False)
    monkeypatch.setattr(harness, "TARBALL_PLACES", (tmp_path / "shared" / "citus", tmp_path / "elsewhere"))
    monkeypatch.setattr(harness, "CitusCluster", None)  # nothing may be started
    assert harness.main([]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("make test-citus: skipped, no Citus tarball")


def test_a_tarball_beside_the_project_is_taken_and_citus_tarball_comes_first(tmp_path, monkeypatch):
    harness = load_harness()
    beside, elsewhere = tmp_path / "shared" / "citus", tmp_path / "elsewhere"
    beside.mkdir(parents=True)
    elsewhere.mkdir()
    for name in ("citus-13.0.0-pg17.tar.gz", "citus-14.0.1-pg18.tar.gz"):
        (beside / name).touch()
    (elsewhere / "citus-15.0.0-pg19.tar.gz").touch()
    monkeypatch.setattr(harness, "TARBALL_PLACES", (beside, elsewhere))
    monkeypatch.delenv("CITUS_TARBALL", raising=False)
    assert harness.find_tarball() == beside / "citus-14.0.1-pg18.tar.gz"
    monkeypatch.setenv("CITUS_TARBALL", str(elsewhere / "citus-15.0.0-pg19.tar.gz"))
    assert harness.find_tarball() == elsewhere / "citus-15.0.0-pg19.tar.gz"
    monkeypatch.setenv("CITUS_TARBALL", str(tmp_path / "missing.tar.gz"))
    with pytest.raises(SystemExit, match="is not a file"):
        harness.find_tarball()
