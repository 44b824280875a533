"""fastmlp._atomic: whole files or none, with the permissions a plain write gives."""
import os
import stat

from fastmlp import _atomic


def write_text(path, text):
    _atomic.write(path, lambda file: file.write(text), "w")


def test_a_new_file_gets_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "new.txt", "x")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode)
    assert mode == stat.S_IMODE(os.stat(plain).st_mode) == 0o644


def test_a_rewritten_file_keeps_its_mode(tmp_path):
    target = tmp_path / "kept.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(os.stat(target).st_mode) == 0o640
