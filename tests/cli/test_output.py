"""``--out``: a regular file is replaced atomically, a symbolic link's target is written (the link
stays a link), and a FIFO or device is written into, never replaced by a regular file."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest

from payorch.output import OutputError, write_text

TEXT = "window: {from: 2026-11-12T00:00:00Z}\n"


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_a_new_file_is_written_with_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "retro.yaml"
    write_text(TEXT, out)
    assert out.read_text(encoding="utf-8") == TEXT
    assert hidden(out.parent) == []


def test_a_regular_file_is_replaced_and_keeps_its_permissions(tmp_path: Path) -> None:
    out = tmp_path / "retro.yaml"
    out.write_text("old\n", encoding="utf-8")
    out.chmod(0o640)
    write_text(TEXT, out)
    assert out.read_text(encoding="utf-8") == TEXT
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert hidden(tmp_path) == []


def test_a_symlink_stays_a_link_and_its_target_is_replaced_beside_the_target(tmp_path: Path) -> None:
    """``--out link.yaml`` used to replace the link with a file, leaving the target as it was."""
    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "retro.yaml"
    target.write_text("old\n", encoding="utf-8")
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "link.yaml"
    link.symlink_to(Path("..") / "reports" / "retro.yaml")

    write_text(TEXT, link)

    assert link.is_symlink()
    assert os.readlink(link) == str(Path("..") / "reports" / "retro.yaml")
    assert target.read_text(encoding="utf-8") == TEXT
    assert hidden(tmp_path / "links") == hidden(tmp_path / "reports") == []


def test_a_dangling_symlink_gets_its_target_made(tmp_path: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "retro.yaml")
    write_text(TEXT, link)
    assert link.is_symlink()
    assert (tmp_path / "retro.yaml").read_text(encoding="utf-8") == TEXT


def test_a_fifo_is_written_into_and_stays_a_fifo(tmp_path: Path) -> None:
    """It used to be replaced by a regular file (its reader never saw the report)."""
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")), daemon=True)
    reader.start()

    write_text(TEXT, fifo)
    reader.join(10)

    assert received == [TEXT]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert hidden(tmp_path) == []


def test_a_link_to_a_fifo_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text(encoding="utf-8")), daemon=True)
    reader.start()

    write_text(TEXT, link)
    reader.join(10)

    assert received == [TEXT]
    assert link.is_symlink()
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_character_device_is_written_into_and_stays_a_device(tmp_path: Path) -> None:
    """A private copy of the null device (major 1, minor 3), so that no real device is at risk."""
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))

    write_text(TEXT, device)

    assert stat.S_ISCHR(device.lstat().st_mode)
    assert hidden(tmp_path) == []


def test_none_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    write_text(TEXT, None)
    assert capsys.readouterr().out == TEXT


def test_what_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OutputError, match=f"^cannot write {loop}: Too many levels of symbolic links$"):
        write_text(TEXT, loop)
    with pytest.raises(OutputError, match=f"^cannot write {tmp_path}: it is a folder$"):
        write_text(TEXT, tmp_path)
    if sys.platform == "linux" and os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError, match="Permission denied"):
            write_text(TEXT, locked / "retro.yaml")


def test_a_long_name_still_fits_its_hidden_partial_file(tmp_path: Path) -> None:
    out = tmp_path / ("r" * 250)
    write_text(TEXT, out)
    assert out.read_text(encoding="utf-8") == TEXT
