"""keras-hub presets: `BertBackbone` / `AlbertBackbone` with their tokenizer.

A preset directory holds `config.json` (the serialized backbone, its
`registered_name` "keras_hub>BertBackbone" or "keras_hub>AlbertBackbone", or
"keras_nlp>..." from keras-nlp),
`model.weights.h5`, `metadata.json`, and the tokenizer: `tokenizer.json` with
its vocabulary under `assets/tokenizer/` (`vocabulary.txt` for
`BertTokenizer`, `vocabulary.spm` for `AlbertTokenizer`).

Write: the backbone built with the config's sizes and the encoder's tensors,
saved with `save_to_preset`, plus a `BertTokenizer(vocabulary=vocab_file,
lowercase=do_lower_case)` (accents stripped when lower-casing, as the
original's BasicTokenizer does) or an `AlbertTokenizer(proto=spm_model_file)`
in a text-classifier preprocessor (`preprocessor.json`, its sequence length
the model's `max_position_embeddings` up to 512), so that
`keras_hub.models.Backbone.from_preset(dir)` and
`keras_hub.models.BertTextClassifier.from_preset(dir, num_classes=2)` load and
run it.
keras-hub presets hold the encoder only: the pretraining and task heads are
left out. keras-hub's BERT and ALBERT compute the tanh GELU (the original's
"gelu") and one dropout rate (`hidden_dropout_prob` is written). Its
`AlbertBackbone` always projects the embeddings; for an ALBERT with
`embedding_size` = `hidden_size` (which has no `embedding_hidden_mapping_in`)
that projection is written as the identity, and read back only if it is one.

Read: a preset saved by keras-hub (`Backbone.from_preset`), mapped back to the
original names; the config comes from the backbone's arguments
(`hidden_act` "gelu"), the vocabulary and casing from the tokenizer.

keras-hub (Keras 3) is imported on first use: it is an optional dependency.
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from bert_tf.interop import layer_variables
from bert_tf.interop.weights import BertWeights
from bert_tf.modeling.config import BertConfig

NAME = "keras_hub"
CONFIG_FILE = "config.json"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
# keras-hub saves a tokenizer's assets under assets/<config file stem>/.
TOKENIZER_ASSETS = ("assets", "tokenizer")
VOCABULARY_FILE = "vocabulary.txt"
SPM_FILE = "vocabulary.spm"
BACKBONES = ("BertBackbone", "AlbertBackbone")
# `registered_name` prefixes of keras-hub classes (presets saved by keras-nlp,
# its former name, load in keras-hub too).
REGISTERED_PACKAGES = ("keras_hub>", "keras_nlp>")
# keras-hub's default sequence length of its text preprocessors.
MAX_SEQUENCE_LENGTH = 512

# Original block roles -> the attribute path of keras-hub's
# TransformerEncoder layer holding them.
BLOCK_LAYERS = {
    "query": ("_self_attention_layer", "_query_dense"),
    "key": ("_self_attention_layer", "_key_dense"),
    "value": ("_self_attention_layer", "_value_dense"),
    "attention_output": ("_self_attention_layer", "_output_dense"),
    "attention_layer_norm": ("_self_attention_layer_norm",),
    "intermediate": ("_feedforward_intermediate_dense",),
    "output": ("_feedforward_output_dense",),
    "output_layer_norm": ("_feedforward_layer_norm",),
}


def _preset_config(path):
  """The parsed `config.json` of a keras-hub preset at `path`, or None."""
  config_file = os.path.join(path, CONFIG_FILE)
  if not (tf.io.gfile.isdir(path) and tf.io.gfile.exists(config_file)):
    return None
  with tf.io.gfile.GFile(config_file) as f:
    try:
      config = json.load(f)
    except ValueError:
      return None
  if not isinstance(config, dict):
    return None
  registered = config.get("registered_name")
  if not (isinstance(registered, str) and
          registered.startswith(REGISTERED_PACKAGES)):
    return None
  return config


def detect(path):
  """Whether `path` is a keras-hub preset directory."""
  return _preset_config(path) is not None



def backbone_variables(backbone, config):
  """The variables of a keras-hub backbone, by original name.

  Args:
    backbone: a built `BertBackbone` or `AlbertBackbone`.
    config: its `BertConfig` (BERT or ALBERT).

  Returns:
    dict original name -> variable, the whole encoder.
  """
  layers = {
      "bert/embeddings/word_embeddings": backbone.token_embedding,
      "bert/embeddings/position_embeddings": backbone.position_embedding,
      "bert/embeddings/token_type_embeddings": backbone.segment_embedding,
      "bert/embeddings/LayerNorm": backbone.embeddings_layer_norm,
      "bert/pooler/dense": backbone.pooled_dense,
  }
  if config.uses_albert_encoder:
    if _projects(config):
      layers["bert/encoder/embedding_hidden_mapping_in"] = (
          backbone.embeddings_projection)
    # transformer_layers[group][inner], in block_scopes order.
    blocks = [layer for group in backbone.transformer_layers
              for layer in group]
  else:
    blocks = backbone.transformer_layers
  layers.update(layer_variables.block_layers(config, blocks, BLOCK_LAYERS))
  return layer_variables.layer_variables(layers)


def _projects(config):
  """Whether an ALBERT config has `embedding_hidden_mapping_in` (E != H).

  The original projects the embeddings only when their width differs from
  the hidden size; keras-hub's `AlbertBackbone` always has its
  `embeddings_projection`, an identity for such a config.
  """
  return config.embedding_width != config.hidden_size


def build_backbone(config):
  """A keras-hub backbone with the architecture of `config`.

  Args:
    config: `BertConfig` (BERT or ALBERT) with `hidden_act` "gelu".

  Returns:
    A `BertBackbone` or `AlbertBackbone` (random weights).

  Raises:
    ValueError: for another `hidden_act` (keras-hub computes the tanh GELU).
  """
  if config.hidden_act != "gelu":
    raise ValueError(
        "bert_config hidden_act = %r cannot be written to keras_hub: "
        "keras-hub's BertBackbone and AlbertBackbone compute only the tanh "
        "GELU (the original's hidden_act \"gelu\")" % config.hidden_act)
  import keras_hub  # pylint: disable=g-import-not-at-top
  kwargs = dict(vocabulary_size=config.vocab_size,
                num_layers=config.num_hidden_layers,
                num_heads=config.num_attention_heads,
                hidden_dim=config.hidden_size,
                intermediate_dim=config.intermediate_size,
                dropout=config.hidden_dropout_prob,
                max_sequence_length=config.max_position_embeddings,
                num_segments=config.type_vocab_size)
  if config.uses_albert_encoder:
    return keras_hub.models.AlbertBackbone(
        embedding_dim=config.embedding_width,
        num_groups=config.num_hidden_groups,
        num_inner_repetitions=config.inner_group_num, **kwargs)
  return keras_hub.models.BertBackbone(**kwargs)


def backbone_config(backbone):
  """The `BertConfig` of a keras-hub backbone.

  Args:
    backbone: a `BertBackbone` or `AlbertBackbone`.

  Returns:
    `BertConfig` (ALBERT keys for an `AlbertBackbone`; `hidden_act` "gelu",
    both dropouts the backbone's one rate).
  """
  config = dict(vocab_size=backbone.vocabulary_size,
                hidden_size=backbone.hidden_dim,
                num_hidden_layers=backbone.num_layers,
                num_attention_heads=backbone.num_heads,
                intermediate_size=backbone.intermediate_dim,
                hidden_act="gelu",
                hidden_dropout_prob=backbone.dropout,
                attention_probs_dropout_prob=backbone.dropout,
                max_position_embeddings=backbone.max_sequence_length,
                type_vocab_size=backbone.num_segments,
                initializer_range=0.02)
  if type(backbone).__name__ == "AlbertBackbone":
    config.update(embedding_size=backbone.embedding_dim,
                  num_hidden_groups=backbone.num_groups,
                  inner_group_num=backbone.num_inner_repetitions)
  return BertConfig.from_dict(config, source="keras-hub backbone config")


def read(path, config=None):
  """Reads a keras-hub preset into `BertWeights`.

  Args:
    path: the preset directory.
    config: `BertConfig` to report the weights under, or None for the
      backbone's own (the tensors are read by the backbone's architecture;
      the caller checks them against this config).

  Returns:
    `BertWeights` with the encoder, the vocabulary (or SentencePiece model)
    and casing of the preset's tokenizer.

  Raises:
    ValueError: if `path` holds another keras-hub model than BERT/ALBERT.
  """
  preset = _preset_config(path)
  if preset is None:
    raise ValueError("No keras-hub preset at %s (expected a directory with a "
                     "config.json saved by keras-hub)" % path)
  if preset.get("class_name") not in BACKBONES:
    raise ValueError("keras-hub preset %s holds a %s; only %s convert" %
                     (path, preset.get("class_name"), " and ".join(BACKBONES)))
  import keras_hub  # pylint: disable=g-import-not-at-top
  backbone = keras_hub.models.Backbone.from_preset(path)
  own_config = backbone_config(backbone)
  if own_config.uses_albert_encoder and not _projects(own_config):
    kernel, bias = (np.asarray(v.numpy())
                    for v in backbone.embeddings_projection.weights)
    if not (np.array_equal(kernel, np.eye(*kernel.shape))
            and not bias.any()):
      raise ValueError(
          "keras-hub preset %s: its AlbertBackbone has embedding_dim = "
          "hidden_dim = %d and an embeddings_projection other than the "
          "identity; ALBERT has no projection when embedding_size = "
          "hidden_size, so this one cannot convert" %
          (path, own_config.hidden_size))
  tensors = layer_variables.read_variables(
      backbone_variables(backbone, own_config), own_config)
  assets = os.path.join(path, *TOKENIZER_ASSETS)
  vocab_file = os.path.join(assets, VOCABULARY_FILE)
  spm_model_file = os.path.join(assets, SPM_FILE)
  return BertWeights(
      config=config or own_config, tensors=tensors,
      vocab_file=vocab_file if tf.io.gfile.exists(vocab_file) else None,
      spm_model_file=(spm_model_file if tf.io.gfile.exists(spm_model_file)
                      else None),
      do_lower_case=_tokenizer_lowercase(path), source=path)


def _tokenizer_lowercase(path):
  """The `lowercase` of a preset's WordPiece tokenizer, or None."""
  config_file = os.path.join(path, TOKENIZER_CONFIG_FILE)
  if not tf.io.gfile.exists(config_file):
    return None
  with tf.io.gfile.GFile(config_file) as f:
    return json.load(f).get("config", {}).get("lowercase")


def _preprocessor(weights):
  """The keras-hub text-classifier preprocessor of `weights`' tokenizer assets.

  Its `sequence_length` is the model's `max_position_embeddings` (at most
  keras-hub's default, 512), so that the preset's tasks run as saved.

  Args:
    weights: `BertWeights`.

  Returns:
    A `BertTextClassifierPreprocessor` with a `BertTokenizer` (a WordPiece
    vocabulary), an `AlbertTextClassifierPreprocessor` with an
    `AlbertTokenizer` (a SentencePiece model), or None without either.
  """
  import keras_hub  # pylint: disable=g-import-not-at-top
  sequence_length = min(MAX_SEQUENCE_LENGTH,
                        weights.config.max_position_embeddings)
  if weights.spm_model_file:
    return keras_hub.models.AlbertTextClassifierPreprocessor(
        keras_hub.models.AlbertTokenizer(proto=weights.spm_model_file),
        sequence_length=sequence_length)
  if weights.vocab_file:
    lowercase = weights.do_lower_case
    if lowercase is None:
      lowercase = True  # the original scripts' --do_lower_case default
      logging.warning("The casing of %s is unknown: writing a lower-casing "
                      "tokenizer (pass --do_lower_case=false for a cased "
                      "vocabulary)", weights.vocab_file)
    return keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer(vocabulary=weights.vocab_file,
                                       lowercase=lowercase,
                                       strip_accents=lowercase),
        sequence_length=sequence_length)
  return None


def write(weights, directory):
  """Writes `weights` as a keras-hub preset.

  Args:
    weights: `BertWeights` whose config has `hidden_act` "gelu".
    directory: an existing, empty directory.

  Returns:
    The original names written (the encoder's).

  Raises:
    ValueError: for another `hidden_act`, or tensors that do not fit the
      config (named, with both shapes).
  """
  backbone = build_backbone(weights.config)
  written = layer_variables.assign_variables(
      backbone_variables(backbone, weights.config), weights)
  if weights.is_albert and not _projects(weights.config):
    kernel, bias = backbone.embeddings_projection.weights
    kernel.assign(np.eye(*kernel.shape, dtype=np.float32))
    bias.assign(np.zeros(bias.shape, np.float32))
  backbone.save_to_preset(directory)
  preprocessor = _preprocessor(weights)
  if preprocessor is None:
    logging.warning("No vocabulary or SentencePiece model known for %s: the "
                    "preset holds the backbone only (pass --vocab_file or "
                    "--spm_model_file for a tokenizer)", weights.source)
  else:
    preprocessor.save_to_preset(directory)
  return written
