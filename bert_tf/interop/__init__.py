"""Checkpoints in and out of other libraries: TF1, Hugging Face, keras-hub, Model Garden.

Every format reads into and writes out of one representation, `BertWeights`
(config, tensors under the original names, tokenizer assets), so any format
converts to any other:

    weights = interop.read("bert-base-uncased/")            # detected: hf
    interop.write(weights, "out/", to_format="tf1")          # released layout
    interop.convert("out/", "preset/", to_format="keras_hub")

| format | directory | carries |
|---|---|---|
| `tf1` | `bert_config.json`, `bert_model.ckpt.*`, `vocab.txt` / `30k-clean.model` | everything, original names |
| `hf` | `config.json`, `model.safetensors`, `vocab.txt` / `spiece.model`, `tokenizer_config.json` | encoder, pretraining heads, classifier, SQuAD head |
| `keras_hub` | a keras-hub preset (`BertBackbone` / `AlbertBackbone` + tokenizer) | encoder |
| `model_garden` | a `tf.train.Checkpoint(encoder=BertEncoderV2)` | encoder |

A Keras model goes out with `from_model` and comes in with
`bert_tf.checkpoints.load_checkpoint(model, directory)`, which reads every
format here.
"""

import dataclasses
import importlib

import tensorflow as tf
from absl import logging

from bert_tf import checkpoints
from bert_tf import file_io
from bert_tf.interop.weights import BertWeights
from bert_tf.interop.weights import check_portable
from bert_tf.interop.weights import check_shapes
from bert_tf.interop.weights import expected_shapes
from bert_tf.modeling.config import BertConfig

# Format name -> module (imported on first use: keras-hub and Model Garden
# are optional dependencies, the `interop` extra). Detection tries them in
# this order.
FORMAT_MODULES = {
    "tf1": "bert_tf.interop.tf1",
    "hf": "bert_tf.interop.hf",
    "keras_hub": "bert_tf.interop.keras_hub",
    "model_garden": "bert_tf.interop.model_garden",
}
FORMATS = tuple(FORMAT_MODULES)


def format_module(name):
  """The module implementing format `name` (`detect`, `read`, `write`).

  Raises:
    ValueError: for an unknown format name.
  """
  if name not in FORMAT_MODULES:
    raise ValueError("Unknown checkpoint format %r (expected one of %s)" %
                     (name, ", ".join(FORMATS)))
  return importlib.import_module(FORMAT_MODULES[name])


def detect_format(path):
  """Which format is at `path`.

  Args:
    path: a file prefix or directory.

  Returns:
    One of `FORMATS`.

  Raises:
    ValueError: naming what was found when no format recognizes it.
  """
  for name in FORMATS:
    if format_module(name).detect(path):
      return name
  if tf.io.gfile.isdir(path):
    found = sorted(tf.io.gfile.listdir(path))
    raise ValueError(
        "No checkpoint found in directory %s: it holds %s. Expected a TF1 "
        "checkpoint (bert_model.ckpt.index with bert_config.json, or a "
        "'checkpoint' state file), a Hugging Face directory (config.json and "
        "model.safetensors or model.safetensors.index.json), a keras-hub "
        "preset (config.json with a keras_hub class and metadata.json), or a "
        "Model Garden encoder checkpoint (a 'checkpoint' state file)" %
        (path, ", ".join(found[:20]) + (" ..." if len(found) > 20 else "")
         if found else "nothing"))
  raise ValueError("Checkpoint not found: %s (expected a TF1 prefix with "
                   "%s.index, or a directory)" % (path, path))


def read(path, from_format="auto", config=None, bert_config_file=None,
         vocab_file=None, spm_model_file=None, do_lower_case=None):
  """Reads a checkpoint of any format into `BertWeights`.

  Args:
    path: the checkpoint (prefix or directory).
    from_format: one of `FORMATS`, or "auto" to detect it.
    config: `BertConfig`, for formats that carry none (a TF1 prefix without
      `bert_config.json`, a Model Garden checkpoint); it takes precedence
      over a config the source carries.
    bert_config_file: path of a `bert_config.json`, the same as `config`.
    vocab_file, spm_model_file, do_lower_case: tokenizer assets, overriding
      those found with the checkpoint.

  Returns:
    `BertWeights` whose encoder tensors all fit the config.

  Raises:
    ValueError: for an unknown layout (naming what was found), missing
      tensors or shape mismatches (naming them and both shapes).
  """
  if bert_config_file:
    config = BertConfig.from_json_file(bert_config_file)
  name = detect_format(path) if from_format == "auto" else from_format
  weights = format_module(name).read(path, config)
  check_shapes(weights.tensors,
               expected_shapes(weights.config, pooler=weights.has_pooler),
               "%s checkpoint %s" % (name, weights.source))
  if not weights.has_pooler:
    logging.warning("%s checkpoint %s has no pooler (bert/pooler/dense/*): a "
                    "model loading it initializes its pooler anew",
                    name, weights.source)
  if vocab_file:
    weights.vocab_file = vocab_file
  if spm_model_file:
    weights.spm_model_file = spm_model_file
  if do_lower_case is not None:
    weights.do_lower_case = do_lower_case
  return weights


@dataclasses.dataclass
class WriteReport:
  """What `write` did.

  Attributes:
    output: the directory written.
    to_format: its format.
    written: original names of the tensors the output holds.
    dropped: original names the format cannot hold (e.g. `cls/*` in a
      keras-hub preset), left out.
  """
  output: str
  to_format: str
  written: list
  dropped: list


def write(weights, output, to_format, overwrite=False):
  """Writes `BertWeights` as a directory of format `to_format`.

  The directory is built under a temporary name and renamed when complete.

  Args:
    weights: `BertWeights`.
    output: the directory to write.
    to_format: one of `FORMATS`.
    overwrite: whether a non-empty `output` may be replaced.

  Returns:
    A `WriteReport`; tensors the format cannot hold are logged and listed in
    `dropped`.

  Raises:
    ValueError: for a config the format's models cannot express.
    FileExistsError: for a non-empty `output` without `overwrite`.
  """
  module = format_module(to_format)
  if to_format != "tf1":
    check_portable(weights.config, to_format)
  with file_io.atomic_directory(output, overwrite=overwrite) as temp:
    written = list(module.write(weights, temp))
  dropped = sorted(set(weights.tensors) - set(written))
  if dropped:
    logging.warning("The %s format cannot hold %d tensors, left out: %s",
                    to_format, len(dropped), ", ".join(dropped))
  return WriteReport(output, to_format, sorted(written), dropped)


def convert(input_path, output, to_format, from_format="auto",
            overwrite=False, **read_kwargs):
  """Reads `input_path` (any format) and writes it to `output` as `to_format`.

  Args:
    input_path, from_format, **read_kwargs: see `read`.
    output, to_format, overwrite: see `write`.

  Returns:
    The `WriteReport`.
  """
  weights = read(input_path, from_format=from_format, **read_kwargs)
  return write(weights, output, to_format, overwrite=overwrite)


def from_model(model, config=None, vocab_file=None, spm_model_file=None,
               do_lower_case=None):
  """The `BertWeights` of a Keras model (BertModel or a task model).

  Args:
    model: a model whose variable paths are original names.
    config: its `BertConfig`; default `model.config`.
    vocab_file, spm_model_file, do_lower_case: tokenizer assets to carry.

  Returns:
    `BertWeights` with every variable of the model.
  """
  config = config or model.config
  tensors = {name: variable.numpy() for name, variable in
             checkpoints.variables_by_name(model).items()}
  return BertWeights(config=config, tensors=tensors, vocab_file=vocab_file,
                     spm_model_file=spm_model_file,
                     do_lower_case=do_lower_case, source=model.name)


def save(model, output, to_format, overwrite=False, **assets):
  """Writes a Keras model's weights in any format.

  Args:
    model: see `from_model`.
    output, to_format, overwrite: see `write`.
    **assets: `config`, `vocab_file`, `spm_model_file`, `do_lower_case`
      (see `from_model`).

  Returns:
    The `WriteReport`.
  """
  return write(from_model(model, **assets), output, to_format,
               overwrite=overwrite)
