"""Writing files and directories atomically: a temporary name, renamed when complete.

Every writer in bert_tf (TFRecords, checkpoints, SavedModels, converted
checkpoints, vocabularies, metric files, JSON lines) goes through these
helpers, so an interrupted or failed run never leaves something half-written
under a final name. Paths may be local or any filesystem `tf.io.gfile` knows
(e.g. `gs://`).
"""

import contextlib
import os
import uuid

import tensorflow as tf


def temporary_path(path, token=None):
  """The temporary name under which `path` is written before the rename.

  Args:
    path: the final path.
    token: a string that makes the name unique to a writer; default: this
      process id. Writers that share a directory (workers) pass their own.

  Returns:
    `<path>.tmp-<token>`, in the same directory (so the rename is atomic on
    local filesystems).
  """
  return "%s.tmp-%s" % (path, os.getpid() if token is None else token)


def _remove(path):
  """Removes a file or directory tree if it exists."""
  if tf.io.gfile.isdir(path):
    tf.io.gfile.rmtree(path)
  elif tf.io.gfile.exists(path):
    tf.io.gfile.remove(path)


def commit(path, token=None):
  """Renames the temporary file of `path` to `path`, replacing what is there.

  For a writer that completes several files before any appears (the
  pretraining workers' shards): each is written under `temporary_path(path,
  token)` and committed once all are complete.

  Args:
    path: the final path.
    token: see `temporary_path`.
  """
  tf.io.gfile.rename(temporary_path(path, token), path, overwrite=True)


def discard(path, token=None):
  """Deletes the temporary file of `path`, if it exists; `path` is untouched.

  Args:
    path: the final path.
    token: see `temporary_path`.
  """
  _remove(temporary_path(path, token))


@contextlib.contextmanager
def atomic_path(path, token=None):
  """Gives a temporary name whose file becomes `path` if the block completes.

  For writers that open a path themselves (`tf.io.TFRecordWriter`, NumPy):
  `with atomic_path(path) as temp: write the file temp`. On success the file
  is committed (`commit`); on an exception it is deleted and `path` is left
  as it was.

  Args:
    path: the final file path (its directory is created if missing).
    token: see `temporary_path`.

  Yields:
    The temporary path (`temporary_path(path, token)`).
  """
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  try:
    yield temporary_path(path, token)
    commit(path, token)
  finally:
    discard(path, token)


@contextlib.contextmanager
def atomic_file(path, mode="w", token=None):
  """Opens a file that appears under `path` only if the block completes.

  Usage: `with atomic_file(path) as f: f.write(...)`. On an exception the
  temporary file is deleted and `path` is left as it was.

  Args:
    path: the final file path (its directory is created if missing).
    mode: "w" (text) or "wb" (bytes).
    token: see `temporary_path`.

  Yields:
    A writable `tf.io.gfile.GFile`.
  """
  if mode not in ("w", "wb"):
    raise ValueError("atomic_file mode must be 'w' or 'wb', got %r" % mode)
  with atomic_path(path, token) as temp:
    with tf.io.gfile.GFile(temp, mode) as f:
      yield f


@contextlib.contextmanager
def output_directory(path):
  """Creates a run's output directory, removed again if the run fails early.

  Usage: `with output_directory(FLAGS.output_dir): run...`. If the block
  raises while the directory it created is still empty, the directory is
  removed, so a failed run leaves no empty output directory behind. A
  directory that existed before, or that holds anything (a checkpoint to
  resume from, an events file), is kept.

  Args:
    path: the directory.

  Yields:
    `path`, created.
  """
  existed = tf.io.gfile.isdir(path)
  tf.io.gfile.makedirs(path)
  try:
    yield path
  except BaseException:
    if not existed and tf.io.gfile.isdir(path) and not tf.io.gfile.listdir(
        path):
      tf.io.gfile.rmtree(path)
    raise


@contextlib.contextmanager
def atomic_directory(path, overwrite=False):
  """Gives a fresh temporary directory that replaces `path` when the block completes.

  Usage: `with atomic_directory(out, overwrite=True) as tmp: write files into tmp`.
  The temporary directory sits beside `path`; on success an existing `path`
  is removed and the temporary directory renamed to it, on an exception the
  temporary directory is deleted and `path` is left untouched.

  Args:
    path: the final directory.
    overwrite: whether an existing non-empty `path` may be replaced.

  Yields:
    The temporary directory's path.

  Raises:
    FileExistsError: if `path` is a non-empty directory (or a file) and
      `overwrite` is False; checked before anything is written.
  """
  path = path.rstrip("/") or path
  if tf.io.gfile.exists(path) and not overwrite:
    if not tf.io.gfile.isdir(path) or tf.io.gfile.listdir(path):
      raise FileExistsError(
          "Output %s already exists and is not an empty directory; pass "
          "--overwrite (overwrite=True) to replace it" % path)
  parent = os.path.dirname(path)
  if parent:
    tf.io.gfile.makedirs(parent)
  temp = temporary_path(path, uuid.uuid4().hex[:8])
  tf.io.gfile.makedirs(temp)
  try:
    yield temp
    _remove(path)
    tf.io.gfile.rename(temp, path)
  finally:
    _remove(temp)
