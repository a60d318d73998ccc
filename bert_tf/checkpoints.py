"""Legacy (TF1, name-based) checkpoints: read them into Keras models, write them back.

A Keras variable's `path` is its original checkpoint name (docs/architecture.md,
principle 2), so loading is a lookup of `variable.path` in the checkpoint, and saving writes
each variable under its path with `SaveV2` — the format of TF1's `tf.train.Saver`,
which `tf.train.list_variables` and original-era tools read.

Released checkpoints carry or lack the pretraining heads (`cls/*`), the Adam
slots (`<name>/adam_m`, `<name>/adam_v`) and `global_step`: optimizer state is
skipped, and the other differences are reported by name.
"""

import dataclasses
import os
import re

import numpy as np
import tensorflow as tf

from bert_tf import file_io

# Names in a checkpoint that hold optimizer or training state, not model weights.
_OPTIMIZER_STATE = re.compile(
    r"(^|/)(global_step|adam_m|adam_v|lamb_m|lamb_v|Adam|Adam_1|beta1_power|"
    r"beta2_power|learning_rate)$")


@dataclasses.dataclass
class LoadReport:
  """What `load_checkpoint` did, by original variable name.

  Attributes:
    checkpoint: the checkpoint prefix that was read.
    loaded: model variables assigned from the checkpoint.
    missing: model variables the checkpoint lacks (left as initialized).
    unexpected: checkpoint variables that no model variable takes (for example
      `cls/*` when loading an encoder alone).
    skipped: optimizer and training state in the checkpoint (`adam_m`, ...).
  """
  checkpoint: str
  loaded: list
  missing: list
  unexpected: list
  skipped: list

  def summary(self):
    """A multi-line, human-readable account (as the original's INIT_FROM_CKPT log)."""
    lines = ["Loaded %d variables from %s" % (len(self.loaded), self.checkpoint)]
    if self.missing:
      lines.append("Newly initialized (not in the checkpoint): %s" %
                   ", ".join(self.missing))
    if self.unexpected:
      lines.append("Unused checkpoint variables: %s" %
                   ", ".join(self.unexpected))
    if self.skipped:
      lines.append("Skipped %d optimizer/training state tensors" %
                   len(self.skipped))
    return "\n".join(lines)


def variables_by_name(model_or_variables):
  """Maps original checkpoint names to variables.

  Args:
    model_or_variables: a Keras model/layer, or an iterable of Keras variables.

  Returns:
    dict: name (the variable's `path`) -> variable.

  Raises:
    ValueError: if two variables share a name.
  """
  variables = getattr(model_or_variables, "weights", model_or_variables)
  result = {}
  for variable in variables:
    name = checkpoint_name(variable)
    if name in result:
      raise ValueError("Two model variables share the checkpoint name %r" % name)
    result[name] = variable
  return result


def checkpoint_name(variable):
  """The original checkpoint name of a Keras or tf.Variable (no ':0' suffix)."""
  name = getattr(variable, "path", None) or variable.name
  return name[:-2] if name.endswith(":0") else name


def resolve_checkpoint(path):
  """Turns a checkpoint prefix or a directory into an existing prefix.

  Args:
    path: a checkpoint prefix (`.../bert_model.ckpt`, `.../model.ckpt-1000`)
      or a directory holding a `checkpoint` state file.

  Returns:
    The checkpoint prefix.

  Raises:
    ValueError: if there is no checkpoint there.
  """
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise ValueError("No checkpoint found in directory %s (expected a "
                       "'checkpoint' state file or pass a prefix such as "
                       "%s/bert_model.ckpt)" % (path, path))
    return latest
  if not tf.io.gfile.exists(path + ".index"):
    raise ValueError("Checkpoint not found: %s (expected the files %s.index "
                     "and %s.data-*)" % (path, path, path))
  return path


def is_training_state(name):
  """Whether a checkpoint name holds optimizer or training state, not a weight."""
  return _OPTIMIZER_STATE.search(name) is not None


def is_name_based(prefix):
  """Whether `prefix` is a TF1 (name-based) checkpoint, not a TF2 object graph.

  Args:
    prefix: a checkpoint prefix, or None.

  Returns:
    False for None, a missing checkpoint, or one written by
    `tf.train.Checkpoint` (it carries `_CHECKPOINTABLE_OBJECT_GRAPH`).
  """
  if prefix is None or not tf.io.gfile.exists(prefix + ".index"):
    return False
  return not tf.train.load_checkpoint(prefix).has_tensor(
      "_CHECKPOINTABLE_OBJECT_GRAPH")


def load_checkpoint(model, path, allow_missing=True):
  """Assigns a checkpoint's tensors to a model's variables by name.

  Args:
    model: a Keras model/layer (or iterable of variables) whose variable paths
      are original names.
    path: a TF1 checkpoint prefix or directory (see `resolve_checkpoint`), or
      a directory in another format `bert_tf.interop` reads (a Hugging Face
      safetensors directory, a keras-hub preset, a Model Garden encoder
      checkpoint; its config is the model's `config` when it carries none).
    allow_missing: if False, model variables absent from the checkpoint are an
      error instead of being reported in `LoadReport.missing`.

  Returns:
    A `LoadReport`.

  Raises:
    ValueError: if the checkpoint is missing, shares no variable with the
      model, a shape differs (naming the variable and both shapes), or
      variables are missing and `allow_missing` is False.
  """
  if tf.io.gfile.isdir(path) and not is_name_based(
      tf.train.latest_checkpoint(path)):
    # Not a directory of TF1 checkpoints: one of the other formats. interop
    # builds on this module, hence the import here.
    from bert_tf import interop  # pylint: disable=g-import-not-at-top
    weights = interop.read(path, config=getattr(model, "config", None))
    return _assign(model, {n: t.shape for n, t in weights.tensors.items()},
                   weights.tensors.__getitem__, weights.source,
                   allow_missing=allow_missing)
  prefix = resolve_checkpoint(path)
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  skipped = sorted(n for n in shapes if is_training_state(n))
  return _assign(model, {n: shape for n, shape in shapes.items()
                         if not is_training_state(n)},
                 reader.get_tensor, prefix, allow_missing=allow_missing,
                 skipped=skipped)


def _assign(model, shapes, read_tensor, source, allow_missing=True,
            skipped=()):
  """Assigns named tensors to a model's variables of the same names.

  Args:
    model: a Keras model/layer (or iterable of variables) whose variable paths
      are original names.
    shapes: dict name -> shape of every tensor the source offers.
    read_tensor: function name -> numpy array, called only for the names the
      model takes.
    source: where the tensors come from (for the report and messages).
    allow_missing: see `load_checkpoint`.
    skipped: names of training state that was left out (for the report).

  Returns:
    A `LoadReport`.

  Raises:
    ValueError: see `load_checkpoint`.
  """
  targets = variables_by_name(model)
  loaded, missing = [], []
  for name, variable in targets.items():
    if name not in shapes:
      missing.append(name)
      continue
    expected = tuple(variable.shape)
    found = tuple(shapes[name])
    if expected != found:
      raise ValueError(
          "Shape mismatch for variable %s in checkpoint %s: the model expects "
          "%s, the checkpoint has %s" % (name, source, list(expected),
                                          list(found)))
    loaded.append(name)
  if not loaded:
    raise ValueError(
        "Checkpoint %s shares no variable with the model (model names look "
        "like %s; checkpoint names like %s)" %
        (source, sorted(targets)[:3], sorted(shapes)[:3]))
  if missing and not allow_missing:
    raise ValueError("Checkpoint %s lacks model variables: %s" %
                     (source, ", ".join(missing)))
  for name in loaded:
    variable = targets[name]
    variable.assign(np.asarray(read_tensor(name)).astype(
        np.dtype(variable.dtype)))
  unexpected = sorted(set(shapes) - set(loaded))
  return LoadReport(source, loaded, missing, unexpected, list(skipped))


def save_checkpoint(tensors, prefix):
  """Writes tensors under their names in the TF1 (name-based) checkpoint format.

  The files are written under a temporary prefix and renamed when complete, so
  an interrupted write never leaves a checkpoint that looks whole.

  Args:
    tensors: a Keras model/layer, or a dict of name -> variable or Tensor or
      numpy array (for example the model's variables plus `<name>/adam_m`
      slots and `global_step`).
    prefix: the checkpoint prefix, e.g. `out/model.ckpt-1000`.

  Returns:
    `prefix`.
  """
  if not isinstance(tensors, dict):
    tensors = variables_by_name(tensors)
  names = sorted(tensors)
  values = [tf.convert_to_tensor(tensors[n]) for n in names]
  directory = os.path.dirname(prefix)
  if directory:
    tf.io.gfile.makedirs(directory)
  # SaveV2 writes `<temp_prefix>.index` and `.data-*`; each is renamed.
  temp_prefix = file_io.temporary_path(prefix)
  tf.raw_ops.SaveV2(prefix=temp_prefix, tensor_names=names,
                    shape_and_slices=[""] * len(names), tensors=values)
  for suffix in (".data-00000-of-00001", ".index"):
    tf.io.gfile.rename(temp_prefix + suffix, prefix + suffix, overwrite=True)
  return prefix
