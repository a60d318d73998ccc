"""Tests of bert_tf.file_io: files and directories appear only when complete."""

import os

import pytest
import tensorflow as tf

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


def test_atomic_path_gives_a_writer_the_temporary_name(tmp_path):
  path = str(tmp_path / "records" / "out.tfrecord")
  with file_io.atomic_path(path) as temp:
    assert temp == file_io.temporary_path(path)
    with tf.io.TFRecordWriter(temp) as writer:
      writer.write(b"record")
    assert not os.path.exists(path)
  assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [b"record"]
  with pytest.raises(RuntimeError):
    with file_io.atomic_path(path) as temp:
      with tf.io.TFRecordWriter(temp) as writer:
        writer.write(b"other")
      raise RuntimeError("boom")
  assert os.listdir(tmp_path / "records") == ["out.tfrecord"]
  assert [r.numpy() for r in tf.data.TFRecordDataset(path)] == [b"record"]


def test_commit_and_discard_files_written_under_a_token(tmp_path):
  paths = [str(tmp_path / name) for name in ("a", "b")]
  for path in paths:
    with open(file_io.temporary_path(path, "w0"), "w") as f:
      f.write(path)
  file_io.commit(paths[0], "w0")
  file_io.discard(paths[1], "w0")
  file_io.discard(paths[1], "w0")  # Nothing left: no error.
  assert os.listdir(tmp_path) == ["a"]
  assert open(paths[0]).read() == paths[0]


def test_output_directory_is_removed_only_if_created_and_empty(tmp_path):
  new = str(tmp_path / "new" / "out")
  with pytest.raises(RuntimeError):
    with file_io.output_directory(new):
      assert os.path.isdir(new)
      raise RuntimeError("bad flag")
  assert not os.path.exists(new)
  with pytest.raises(RuntimeError):
    with file_io.output_directory(new):
      open(os.path.join(new, "model.ckpt-1.index"), "w").write("x")
      raise RuntimeError("killed after a checkpoint")
  assert os.listdir(new) == ["model.ckpt-1.index"]
  existing = tmp_path / "existing"
  existing.mkdir()
  with pytest.raises(RuntimeError):
    with file_io.output_directory(str(existing)):
      raise RuntimeError("bad flag")
  assert existing.is_dir()
