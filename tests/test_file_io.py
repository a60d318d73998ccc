"""Tests of bert_tf.file_io: files and directories appear only when complete."""

import os

import pytest

from bert_tf import file_io


def test_atomic_file_appears_only_when_complete(tmp_path):
  path = str(tmp_path / "sub" / "out.txt")
  with file_io.atomic_file(path) as f:
    f.write("a\n")
    assert not os.path.exists(path)
    assert os.path.exists(file_io.temporary_path(path))
  assert open(path).read() == "a\n"
  assert os.listdir(tmp_path / "sub") == ["out.txt"]


def test_atomic_file_failure_keeps_the_old_file(tmp_path):
  path = str(tmp_path / "out.bin")
  with open(path, "wb") as f:
    f.write(b"old")
  with pytest.raises(RuntimeError):
    with file_io.atomic_file(path, "wb") as f:
      f.write(b"new")
      raise RuntimeError("boom")
  assert open(path, "rb").read() == b"old"
  assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_directory_replaces_only_with_overwrite(tmp_path):
  out = str(tmp_path / "out")
  os.makedirs(out)
  with file_io.atomic_directory(out) as tmp:  # empty: allowed
    open(os.path.join(tmp, "a"), "w").write("1")
  assert os.listdir(out) == ["a"]
  with pytest.raises(FileExistsError, match="--overwrite"):
    with file_io.atomic_directory(out):
      pass
  with pytest.raises(ValueError):
    with file_io.atomic_directory(out, overwrite=True) as tmp:
      open(os.path.join(tmp, "b"), "w").write("2")
      raise ValueError("half-written")
  assert os.listdir(out) == ["a"]
  assert sorted(os.listdir(tmp_path)) == ["out"]
  with file_io.atomic_directory(out, overwrite=True) as tmp:
    open(os.path.join(tmp, "b"), "w").write("2")
  assert os.listdir(out) == ["b"]
