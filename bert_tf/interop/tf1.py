"""The original TF1 checkpoint format (google-research/bert and /albert releases).

Read: a checkpoint prefix (`.../bert_model.ckpt`, `.../model.ckpt-1000`) or a
directory holding one (a `checkpoint` state file, or exactly one `*.index`
file, as in the released zips), with `bert_config.json` / `albert_config.json`
beside it unless a config is given. Optimizer and training state
(`adam_m`, `global_step`, ...) is skipped.

Write: a directory with `bert_config.json`, `bert_model.ckpt.{index,data-*}`
under the original names, a `checkpoint` state file (so the directory itself
is a valid `--init_checkpoint`), and the vocabulary (`vocab.txt`) or
SentencePiece model (`30k-clean.model`, ALBERT's released name) when known.
"""

import os

import numpy as np
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.interop.weights import BertWeights
from bert_tf.interop.weights import find_tokenizer_assets
from bert_tf.modeling.config import BertConfig

NAME = "tf1"
CONFIG_FILE_NAMES = ("bert_config.json", "albert_config.json")
CHECKPOINT_PREFIX = "bert_model.ckpt"
SPM_MODEL_FILE_NAME = "30k-clean.model"


def find_prefix(path):
  """The checkpoint prefix at `path`, TF1 or TF2 (object-based).

  Args:
    path: a prefix, or a directory with a `checkpoint` state file or a single
      `*.index` file.

  Returns:
    The prefix, or None for a directory without a checkpoint. (A prefix is
    returned as is, existing or not.)
  """
  if not tf.io.gfile.isdir(path):
    return path
  latest = tf.train.latest_checkpoint(path)
  if latest:
    return latest
  indexes = tf.io.gfile.glob(os.path.join(path, "*.index"))
  return indexes[0][:-len(".index")] if len(indexes) == 1 else None


def checkpoint_prefix(path):
  """The TF1 (name-based) checkpoint prefix at `path`, or None if there is none.

  Args:
    path: see `find_prefix`.

  Returns:
    The prefix, or None (also for a TF2 object-based checkpoint).
  """
  prefix = find_prefix(path)
  return prefix if checkpoints.is_name_based(prefix) else None


def detect(path):
  """Whether `path` holds a TF1 checkpoint."""
  return checkpoint_prefix(path) is not None


def read(path, config=None):
  """Reads a TF1 checkpoint into `BertWeights`.

  Args:
    path: see `checkpoint_prefix`.
    config: `BertConfig`, or None to read `bert_config.json` (or
      `albert_config.json`) beside the checkpoint.

  Returns:
    `BertWeights` with every model tensor of the checkpoint.

  Raises:
    ValueError: if there is no checkpoint, or no config given or found.
  """
  prefix = checkpoint_prefix(path)
  if prefix is None:
    raise ValueError("No TF1 checkpoint at %s (expected a prefix with a "
                     ".index file, or a directory holding one)" % path)
  config = config_beside(prefix, config, "TF1")
  reader = tf.train.load_checkpoint(prefix)
  tensors = {}
  for name in reader.get_variable_to_shape_map():
    if not checkpoints.is_training_state(name):
      tensors[name] = np.asarray(reader.get_tensor(name))
  return weights_beside(prefix, config, tensors)


def write(weights, directory):
  """Writes `weights` as a released-style TF1 checkpoint directory.

  Args:
    weights: `BertWeights`.
    directory: an existing, empty directory.

  Returns:
    The names written (all of `weights.tensors`).
  """
  write_config_and_assets(weights, directory)
  checkpoints.save_checkpoint(dict(weights.tensors),
                              os.path.join(directory, CHECKPOINT_PREFIX))
  tf.compat.v1.train.update_checkpoint_state(directory, CHECKPOINT_PREFIX)
  return sorted(weights.tensors)


def config_beside(prefix, config, kind):
  """The config of a checkpoint that carries none in itself.

  Args:
    prefix: the checkpoint prefix.
    config: `BertConfig` given by the caller, or None.
    kind: the checkpoint's format, for the message ("TF1").

  Returns:
    `config`, else the `bert_config.json` (or `albert_config.json`) beside
    the checkpoint.

  Raises:
    ValueError: naming the checkpoint when there is neither.
  """
  if config is not None:
    return config
  directory = os.path.dirname(prefix)
  for name in CONFIG_FILE_NAMES:
    if tf.io.gfile.exists(os.path.join(directory, name)):
      return BertConfig.from_json_file(os.path.join(directory, name))
  raise ValueError(
      "%s checkpoint %s carries no config: none of %s is beside it; pass "
      "--bert_config_file" % (kind, prefix, ", ".join(CONFIG_FILE_NAMES)))


def weights_beside(prefix, config, tensors):
  """`BertWeights` read from a checkpoint, with the tokenizer files beside it.

  Args:
    prefix: the checkpoint prefix (the weights' source).
    config: `BertConfig`.
    tensors: dict original name -> numpy array.

  Returns:
    `BertWeights`.
  """
  vocab_file, spm_model_file = find_tokenizer_assets(os.path.dirname(prefix))
  return BertWeights(config=config, tensors=tensors, vocab_file=vocab_file,
                     spm_model_file=spm_model_file, source=prefix)


def write_config_and_assets(weights, directory):
  """Writes `bert_config.json` and the tokenizer files of `weights`.

  Args:
    weights: `BertWeights`.
    directory: the output directory; receives `bert_config.json`, and
      `vocab.txt` / `30k-clean.model` when `weights` knows them.
  """
  with tf.io.gfile.GFile(os.path.join(directory, "bert_config.json"), "w") as f:
    f.write(weights.config.to_json_string())
  if weights.vocab_file:
    tf.io.gfile.copy(weights.vocab_file, os.path.join(directory, "vocab.txt"))
  if weights.spm_model_file:
    tf.io.gfile.copy(weights.spm_model_file,
                     os.path.join(directory, SPM_MODEL_FILE_NAME))
