"""TensorFlow Model Garden encoder checkpoints (`official.nlp.modeling.networks`).

A TF2 object-based checkpoint of an encoder saved as
`tf.train.Checkpoint(encoder=encoder)`. Model Garden's encoders are tf_keras
models; their variables hold the original numbers in the layouts described
in `layer_variables` (attention kernels [hidden, heads, head_dim]).

Write: a directory with a `BertEncoderV2` checkpoint saved by
`tf.train.Checkpoint(encoder=encoder).save(<dir>/bert_model.ckpt)` (so
`bert_model.ckpt-1.*` and a `checkpoint` state file:
`tf.train.latest_checkpoint(dir)` finds it), and beside it `bert_config.json`
and the vocabulary (`vocab.txt`) or SentencePiece model (`30k-clean.model`),
so that reading it back needs no `--bert_config_file`. An ALBERT config is
written as Model Garden's `AlbertEncoder`, which shares one Transformer block
across all layers: only ALBERT configs with `num_hidden_groups` =
`inner_group_num` = 1 convert. The pretraining and task heads are left out.

Read: a checkpoint prefix or a directory holding one, written as above or by
Model Garden's own `official/nlp/tools/tf2_bert_encoder_checkpoint_converter.py`
(a `BertEncoder`, the functional V1 encoder, under the object name
`encoder`; or, with `--converted_model=pretrainer`, inside a
`BertPretrainerV2`, whose heads are not read), found by its object path
(`find_encoder`). The checkpoint carries no architecture: the config is
`--bert_config_file`, else `bert_config.json` beside the checkpoint. The
encoder is rebuilt from it, restored with `tf.train.Checkpoint`, and its
variables mapped back to the original names.

Model Garden (`tf-models-official`, with tf_keras) is imported on first use:
it is an optional dependency.
"""

import os
import re

import numpy as np
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf.interop import layer_variables
from bert_tf.interop import tf1
from bert_tf.interop.weights import block_scopes

NAME = "model_garden"
CHECKPOINT_PREFIX = "bert_model.ckpt"
OBJECT_NAME = "encoder"
# Checkpoint key of a Transformer block's query kernel, below the encoder's
# object path: the subclassed BertEncoderV2 tracks its blocks by attribute
# (`_transformer_layers/<i>`), the functional BertEncoder and AlbertEncoder
# by position among the layers with weights. (Keys of the blocks, not of the
# embeddings: a variable is stored under one path only, and a pretrainer
# stores the word embeddings under its masked-LM head.)
QUERY_KERNEL_KEY = re.compile(
    r"^(?P<path>.+)/(?P<list>_transformer_layers/|layer_with_weights-)"
    r"(?P<index>\d+)/_attention_layer/_query_dense/kernel/"
    r"\.ATTRIBUTES/VARIABLE_VALUE$")

# Original block roles -> the attribute path of Model Garden's
# TransformerEncoderBlock layer holding them.
BLOCK_LAYERS = {
    "query": ("_attention_layer", "_query_dense"),
    "key": ("_attention_layer", "_key_dense"),
    "value": ("_attention_layer", "_value_dense"),
    "attention_output": ("_attention_layer", "_output_dense"),
    "attention_layer_norm": ("_attention_layer_norm",),
    "intermediate": ("_intermediate_dense",),
    "output": ("_output_dense",),
    "output_layer_norm": ("_output_layer_norm",),
}


def checkpoint_prefix(path):
  """The object-based (TF2) checkpoint prefix at `path`, or None.

  Args:
    path: see `tf1.find_prefix`.

  Returns:
    The prefix, or None if there is none or it is a TF1 (name-based) one.
  """
  prefix = tf1.find_prefix(path)
  if prefix is None or not tf.io.gfile.exists(prefix + ".index"):
    return None
  return None if checkpoints.is_name_based(prefix) else prefix


def find_encoder(prefix):
  """Where a checkpoint holds a Model Garden encoder, which kind, how deep.

  The encoder is found by its blocks' keys, wherever it is: under `encoder`
  (as written here and by Model Garden's converter), under another name, or
  inside a model (e.g. `encoder/encoder_network`, the converter's
  `--converted_model=pretrainer`).

  Args:
    prefix: an object-based checkpoint prefix.

  Returns:
    (object path, e.g. "encoder"; kind: "v2" for a `BertEncoderV2`,
    "functional" for a `BertEncoder` or `AlbertEncoder`; the number of
    Transformer blocks stored), or None. With several candidates, `encoder`
    or else the shortest path.
  """
  blocks = {}
  for name, _ in tf.train.list_variables(prefix):
    match = QUERY_KERNEL_KEY.match(name)
    if match:
      kind = "v2" if match.group("list") == "_transformer_layers/" else (
          "functional")
      blocks.setdefault((match.group("path"), kind), set()).add(
          match.group("index"))
  if not blocks:
    return None
  path, kind = min(blocks, key=lambda f: (f[0] != OBJECT_NAME, len(f[0]), f))
  return path, kind, len(blocks[path, kind])


def _restore(prefix, path, encoder):
  """Restores `encoder` from the object path `path` of a checkpoint.

  Args:
    prefix: the checkpoint prefix.
    path: the encoder's object path in it (see `find_encoder`), e.g.
      "encoder/encoder_network".
    encoder: a built Model Garden encoder.

  Raises:
    AssertionError, ValueError, tf.errors.OpError: from TensorFlow when the
      encoder's variables do not match the checkpoint's.
  """
  root = encoder
  for name in reversed(path.split("/")):
    root = tf.train.Checkpoint(**{name: root})
  status = root.read(prefix)
  status.expect_partial()  # the rest of the checkpoint (save_counter, heads)
  status.assert_existing_objects_matched()


def detect(path):
  """Whether `path` holds a Model Garden encoder checkpoint."""
  prefix = checkpoint_prefix(path)
  return prefix is not None and find_encoder(prefix) is not None


def _activation(hidden_act):
  """The tf_keras activation computing `hidden_act` as bert_tf does."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.modeling import activations  # pylint: disable=g-import-not-at-top
  return {"gelu": activations.gelu,  # the tanh approximation
          "gelu_erf": tf_keras.activations.gelu,  # exact
          "relu": "relu", "tanh": "tanh", "linear": "linear"}[hidden_act]


def _check_albert(config):
  """Refuses ALBERT configs that Model Garden's `AlbertEncoder` cannot express."""
  if (config.num_hidden_groups, config.inner_group_num) != (1, 1):
    raise ValueError(
        "This ALBERT config cannot be a Model Garden AlbertEncoder, which "
        "shares one Transformer block across all layers: it needs "
        "num_hidden_groups = inner_group_num = 1, found num_hidden_groups = "
        "%d, inner_group_num = %d" %
        (config.num_hidden_groups, config.inner_group_num))


def build_encoder(config, kind="v2"):
  """A Model Garden encoder with the architecture of `config`, built.

  Args:
    config: `BertConfig`.
    kind: "v2" for `BertEncoderV2`, "functional" for the `BertEncoder` that
      Model Garden's converter writes; an ALBERT config always builds an
      `AlbertEncoder`.

  Returns:
    The encoder, its variables created (random values).

  Raises:
    ValueError: for an ALBERT config `AlbertEncoder` cannot express.
  """
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
  common = dict(vocab_size=config.vocab_size,
                hidden_size=config.hidden_size,
                num_layers=config.num_hidden_layers,
                num_attention_heads=config.num_attention_heads,
                max_sequence_length=config.max_position_embeddings,
                type_vocab_size=config.type_vocab_size,
                initializer=tf_keras.initializers.TruncatedNormal(
                    stddev=config.initializer_range))
  activation = _activation(config.hidden_act)
  if config.uses_albert_encoder:
    _check_albert(config)
    return networks.AlbertEncoder(
        embedding_width=config.embedding_width,
        intermediate_size=config.intermediate_size, activation=activation,
        dropout_rate=config.hidden_dropout_prob,
        attention_dropout_rate=config.attention_probs_dropout_prob, **common)
  encoder_class = (networks.BertEncoderV2 if kind == "v2"
                   else networks.BertEncoder)
  encoder = encoder_class(
      inner_dim=config.intermediate_size, inner_activation=activation,
      output_dropout=config.hidden_dropout_prob,
      attention_dropout=config.attention_probs_dropout_prob, **common)
  ones = np.ones((1, 2), np.int32)
  encoder(dict(input_word_ids=ones, input_mask=ones, input_type_ids=ones * 0))
  return encoder


def encoder_variables(encoder, config):
  """The variables of a Model Garden encoder, by original name.

  Args:
    encoder: a built `BertEncoderV2`, `BertEncoder` or `AlbertEncoder`.
    config: its `BertConfig`.

  Returns:
    dict original name -> variable, the whole encoder.
  """
  layers = {}
  if config.uses_albert_encoder:
    # A functional model without layer attributes: its layers by name.
    layer = encoder.get_layer
    if config.embedding_width != config.hidden_size:  # as in the original
      layers["bert/encoder/embedding_hidden_mapping_in"] = layer(
          "embedding_projection")
    blocks = [layer("transformer")]
    embedding_norm, pooler = layer("embeddings/layer_norm"), layer(
        "pooler_transform")
    word, position, token_type = (layer("word_embeddings"),
                                  layer("position_embedding"),
                                  layer("type_embeddings"))
  else:
    # The BERT encoders keep their layers in (private) attributes.
    # pylint: disable=protected-access
    blocks = encoder._transformer_layers
    embedding_norm = encoder._embedding_norm_layer
    pooler = encoder._pooler_layer
    word, position, token_type = (encoder._embedding_layer,
                                  encoder._position_embedding_layer,
                                  encoder._type_embedding_layer)
    # pylint: enable=protected-access
  layers.update({
      "bert/embeddings/word_embeddings": word,
      "bert/embeddings/position_embeddings": position,
      "bert/embeddings/token_type_embeddings": token_type,
      "bert/embeddings/LayerNorm": embedding_norm,
      "bert/pooler/dense": pooler,
  })
  layers.update(layer_variables.block_layers(config, blocks, BLOCK_LAYERS))
  return layer_variables.layer_variables(layers)


def read(path, config=None):
  """Reads a Model Garden encoder checkpoint into `BertWeights`.

  Args:
    path, config: as `tf1.read` (`path` a TF2 checkpoint, see
      `checkpoint_prefix`).

  Returns:
    `BertWeights` with the encoder, and the tokenizer files beside it.

  Raises:
    ValueError: if there is no encoder checkpoint, no config given or found,
      or the checkpoint does not fit the config.
  """
  prefix = checkpoint_prefix(path)
  found = prefix and find_encoder(prefix)
  if not found:
    raise ValueError(
        "No Model Garden encoder checkpoint at %s (expected a TF2 checkpoint "
        "of tf.train.Checkpoint(%s=encoder), a prefix or a directory holding "
        "one)" % (path, OBJECT_NAME))
  object_path, kind, stored_blocks = found
  config = tf1.config_beside(prefix, config, "Model Garden")
  encoder = build_encoder(config, kind)
  variables = encoder_variables(encoder, config)
  problem = None
  blocks = len(block_scopes(config))
  if stored_blocks != blocks:
    problem = ("it holds %d Transformer blocks under %s, the config's %s "
               "has %d" % (stored_blocks, object_path,
                           type(encoder).__name__, blocks))
  else:
    try:
      _restore(prefix, object_path, encoder)
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      # TF's first line names the variable (and both shapes); the rest
      # prints variable values.
      problem = str(e).split("\n")[0]
  if problem:
    raise ValueError("Model Garden checkpoint %s does not fit the config %s: "
                     "%s" % (prefix, config.to_json_string().replace("\n", ""),
                             problem))
  return tf1.weights_beside(prefix, config,
                            layer_variables.read_variables(variables, config))


def write(weights, directory):
  """Writes `weights` as a Model Garden `BertEncoderV2` (or `AlbertEncoder`) checkpoint.

  Args:
    weights: `BertWeights`.
    directory: an existing, empty directory.

  Returns:
    The original names written (the encoder's).

  Raises:
    ValueError: for an ALBERT config `AlbertEncoder` cannot express, or
      tensors that do not fit the config (named, with both shapes).
  """
  encoder = build_encoder(weights.config)
  written = layer_variables.assign_variables(
      encoder_variables(encoder, weights.config), weights)
  tf.train.Checkpoint(**{OBJECT_NAME: encoder}).save(
      os.path.join(directory, CHECKPOINT_PREFIX))
  tf1.write_config_and_assets(weights, directory)
  return written
