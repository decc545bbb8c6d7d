"""The data folder is made for its owner only, and what others may use is named with its mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ingest.private_files import exposed, make_private_folder, private_umask


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_folder_is_its_owners_only_and_an_existing_one_is_left(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        make_private_folder(tmp_path / "above" / "data")
        (tmp_path / "shared").mkdir()
        make_private_folder(tmp_path / "shared")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "above" / "data") == 0o700
    assert mode(tmp_path / "above") == 0o755  # as mkdir -p -m 700 leaves the folders above
    assert mode(tmp_path / "shared") == 0o755


def test_the_private_umask_takes_group_and_other_bits_away_until_its_end(tmp_path: Path) -> None:
    previous = os.umask(0o002)
    try:
        with private_umask():
            (tmp_path / "made").write_text("")
        (tmp_path / "after").write_text("")
        restored = os.umask(previous)
    finally:
        os.umask(previous)
    assert (mode(tmp_path / "made"), mode(tmp_path / "after"), restored) == (0o600, 0o664, 0o002)


def test_only_what_others_may_use_is_named_with_its_mode(tmp_path: Path) -> None:
    keys = tmp_path / "payorch.yaml"
    keys.write_text("admin_api_keys: [adm_x]\n")
    keys.chmod(0o640)
    assert exposed(keys, "API keys") == (
        f"{keys} holds API keys and is open to other users (mode 0640): chmod 600 it"
    )
    tmp_path.chmod(0o711)
    assert exposed(tmp_path, "payments") == (
        f"{tmp_path} holds payments and is open to other users (mode 0711): chmod 700 it"
    )
    keys.chmod(0o600)
    tmp_path.chmod(0o700)
    assert (exposed(keys, "API keys"), exposed(tmp_path, "payments")) == (None, None)
    assert exposed(tmp_path / "missing", "payments") is None


def test_making_a_folder_names_the_highest_one_it_made(tmp_path: Path) -> None:
    assert make_private_folder(tmp_path / "above" / "data") == tmp_path / "above"
    assert make_private_folder(tmp_path / "above" / "data") is None  # there already
    assert make_private_folder(tmp_path / "above" / "other") == tmp_path / "above" / "other"
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        make_private_folder(tmp_path / "file")
