"""Writing TFRecord files that appear only when complete.

`RoundRobinRecordWriter` deals serialized records over several files, as the
original `create_pretraining_data.py`, under temporary names
(`file_io.temporary_path`) renamed when every record is in, so a failed run
never leaves a truncated file that looks complete. The parallel mode's
workers write under a shared token and leave their files to the parent, which
commits them all together when every worker succeeded (`commit_all`).
"""

import tensorflow as tf

from bert_tf import file_io


def commit_all(paths, token=None):
  """Renames the temporary files of `paths` to their final names.

  Args:
    paths: final paths whose files are complete under
      `file_io.temporary_path(path, token)`.
    token: the temporary names' token.
  """
  for path in paths:
    file_io.commit(path, token)


def discard_all(paths, token=None):
  """Deletes whatever temporary files of `paths` exist (see `commit_all`)."""
  for path in paths:
    file_io.discard(path, token)


class RoundRobinRecordWriter(object):
  """Writes serialized records round-robin over files, renamed when complete.

  Record i goes to file i % len(output_files), as in the original. Until
  `close()` the files exist only under `file_io.temporary_path(name, token)`;
  `close()` renames them to their final names, `abort()` deletes them. Used
  as a context manager, an exception aborts.
  """

  def __init__(self, output_files, token=None):
    """Opens the temporary files.

    Args:
      output_files: list of final output paths (at least one).
      token: the temporary names' token (see `file_io.temporary_path`).

    Raises:
      ValueError: if `output_files` is empty or names a file twice.
    """
    if not output_files:
      raise ValueError("no output file given")
    if len(set(output_files)) != len(output_files):
      raise ValueError("an output file is named twice in %s" %
                       ",".join(output_files))
    self.output_files = list(output_files)
    self._token = token
    self._writers = []
    try:
      for path in self.output_files:
        self._writers.append(
            tf.io.TFRecordWriter(file_io.temporary_path(path, token)))
    except Exception:
      self.abort()
      raise
    self._next = 0
    self.num_written = 0

  def write(self, serialized):
    """Writes one serialized record to the next file in turn."""
    self._writers[self._next].write(serialized)
    self._next = (self._next + 1) % len(self._writers)
    self.num_written += 1

  def _close_writers(self):
    for writer in self._writers:
      writer.close()
    self._writers = []

  def close(self, rename=True):
    """Closes the files and, by default, renames them to their final names.

    Args:
      rename: False leaves them under their temporary names, for a caller
        that commits several writers' files together (`commit_all`).

    Returns:
      The list of final output paths.
    """
    self._close_writers()
    if rename:
      commit_all(self.output_files, self._token)
    return self.output_files

  def abort(self):
    """Closes and deletes the temporary files; final names are not touched."""
    self._close_writers()
    discard_all(self.output_files, self._token)

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc_value, traceback):
    if exc_type is None:
      self.close()
    else:
      self.abort()
    return False
