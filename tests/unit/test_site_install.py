"""The offline installer's own safety rules (the end-to-end install is tests/integration/test_bundle.py)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from deploy import site_install


def archive(tmp_path: Path, files: dict[str, bytes], manifest: dict | None = None) -> Path:
    path = tmp_path / "bundle.tar"
    with tarfile.open(path, "w") as tar:
        entries = ({site_install.MANIFEST: json.dumps(manifest).encode()} if manifest else {}) | files
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("has_data_filter", [True, False])
def test_extraction_refuses_paths_that_leave_the_staging_folder(tmp_path: Path, monkeypatch, has_data_filter) -> None:
    if not has_data_filter:   # as on Python < 3.11.4 (Debian 12 ships 3.11.2)
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    path = archive(tmp_path, {"wheels/ok.whl": b"x", "../evil.txt": b"y"})
    dest = tmp_path / "staging"
    dest.mkdir()
    with tarfile.open(path) as tar:
        ok, evil = tar.getmembers()
        site_install._extract(tar, ok, dest)
        with pytest.raises((site_install.InstallError, tarfile.FilterError)):
            site_install._extract(tar, evil, dest)
    assert (dest / "wheels" / "ok.whl").read_bytes() == b"x" and not (tmp_path / "evil.txt").exists()


def test_not_a_bundle_and_a_foreign_platform_are_named(tmp_path: Path) -> None:
    with pytest.raises(site_install.InstallError, match="not an Enclave bundle"):
        site_install.read_manifest(archive(tmp_path, {"x.txt": b"x"}))
    manifest = {"format": site_install.FORMAT, "target": {"python": "2.7", "platform": "win32", "machine": "x"}}
    with pytest.raises(site_install.InstallError, match="built for Python 2.7 on win32"):
        site_install.check_platform(site_install.read_manifest(archive(tmp_path, {}, manifest)))
