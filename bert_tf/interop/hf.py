"""The Hugging Face `transformers` format: `config.json` and safetensors.

Write: a directory that `transformers` (`AutoModel.from_pretrained`,
`BertForPreTraining.from_pretrained`, ...) and keras-hub's Hugging Face
reader (`keras_hub.models.BertBackbone.from_preset`) load:
- `config.json`: `model_type` "bert" or "albert", `architectures` after the
  heads present (`*ForPreTraining` with both pretraining heads,
  `*ForMaskedLM` with the masked-LM head alone,
  `BertForNextSentencePrediction` with NSP alone,
  `*ForSequenceClassification` with run_classifier's head, with `id2label`,
  `*ForQuestionAnswering` with run_squad's, else `*Model`), the encoder's
  keys under Hugging Face's names, `layer_norm_eps` 1e-12 and `hidden_act`
  by `BERT_ACTIVATIONS_TO_HF` (the original's tanh "gelu" is "gelu_new");
- `model.safetensors` (metadata `{"format": "pt"}`): Hugging Face's names and
  layouts, Linear weights [out, in] (the transposed kernels), encoder names
  under the `bert.` / `albert.` prefix; the decoder weight and bias of the
  masked-LM head are tied to the word embeddings and the head's bias, and
  left out as `save_pretrained` leaves them out; an ALBERT without
  `embedding_hidden_mapping_in` (embedding_size == hidden_size) gets the
  identity projection `AlbertModel` always applies;
- `vocab.txt` or `spiece.model`, `tokenizer_config.json` (`tokenizer_class`,
  `do_lower_case`: as recorded with the input, else judged by the
  vocabulary, `model_max_length`) and `special_tokens_map.json`.

Read: such a directory, including what `transformers` itself writes and
older variants: names with or without the model prefix, LayerNorm
`weight`/`bias` or the legacy `gamma`/`beta`, a single `model.safetensors` or
shards listed in `model.safetensors.index.json` (float32, float16 or
bfloat16), the decoder weight present or tied away (a decoder that is not
tied leaves the masked-LM head out, with a warning), with or without the
pooler. Other tensors (`position_ids` buffers, heads bert_tf has no model
for) are ignored. A directory with only `pytorch_model.bin` is refused with
the way to convert it (reading it would need PyTorch).
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from bert_tf.interop import weights as weights_lib
from bert_tf.interop.weights import BertWeights
from bert_tf.modeling.config import BertConfig
from bert_tf.modeling.config import read_json_file

NAME = "hf"
CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
PYTORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
SPM_MODEL_FILE = "spiece.model"
LAYER_NORM_EPS = 1e-12

# Hugging Face's config keys with the same meaning as bert_config.json's
# (`hidden_act` aside, which is mapped), and their defaults in
# `BertConfig` / `AlbertConfig` of transformers, for configs that omit them.
HF_DEFAULTS = {
    "bert": {
        "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
        "type_vocab_size": 2, "initializer_range": 0.02,
    },
    "albert": {
        "vocab_size": 30000, "embedding_size": 128, "hidden_size": 4096,
        "num_hidden_layers": 12, "num_hidden_groups": 1,
        "num_attention_heads": 64, "intermediate_size": 16384,
        "inner_group_num": 1, "hidden_act": "gelu_new",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 512, "type_vocab_size": 2,
        "initializer_range": 0.02,
    },
}

# Hugging Face's module names of one Transformer block, by the roles of
# `weights.BERT_BLOCK_NAMES`, relative to the block.
HF_BLOCK_NAMES = {
    "bert": {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attention_output": "attention.output.dense",
        "attention_layer_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_layer_norm": "output.LayerNorm",
    },
    "albert": {
        "query": "attention.query",
        "key": "attention.key",
        "value": "attention.value",
        "attention_output": "attention.dense",
        "attention_layer_norm": "attention.LayerNorm",
        "intermediate": "ffn",
        "output": "ffn_output",
        "output_layer_norm": "full_layer_layer_norm",
    },
}
LAYER_NORM_ROLES = ("attention_layer_norm", "output_layer_norm")

# The heads' modules: masked-LM transform, its bias, the tied decoder, the
# NSP (BERT) / SOP (ALBERT) classifier.
HF_HEAD_NAMES = {
    "bert": {"transform_dense": "cls.predictions.transform.dense",
             "transform_layer_norm": "cls.predictions.transform.LayerNorm",
             "mlm_bias": "cls.predictions.bias",
             "decoder": "cls.predictions.decoder",
             "next_sentence": "cls.seq_relationship"},
    "albert": {"transform_dense": "predictions.dense",
               "transform_layer_norm": "predictions.LayerNorm",
               "mlm_bias": "predictions.bias",
               "decoder": "predictions.decoder",
               "next_sentence": "sop_classifier.classifier"},
}
# transformers models whose `classifier.*` is not run_classifier's head
# (a classifier of the pooled output): they score tokens or choices.
OTHER_CLASSIFIERS = ("ForTokenClassification", "ForMultipleChoice")
# ALBERT's projection of the embeddings to the hidden width. The original
# (and bert_tf) has it only when embedding_size != hidden_size;
# transformers' AlbertModel always has it (identity-initialized here).
ALBERT_MAPPING = "bert/encoder/embedding_hidden_mapping_in"
HF_ALBERT_MAPPING = "encoder.embedding_hidden_mapping_in"
# Encoder modules live under the model prefix (`bert.` / `albert.`).
ENCODER_ROOTS = ("embeddings.", "encoder.", "pooler.")


class _Pair(object):
  """One tensor under its original name and its Hugging Face name.

  Attributes:
    original: the original (TF1) name.
    hf: the Hugging Face name (with the model prefix for encoder tensors).
    transpose: whether the layouts are transposes of each other (a dense
      kernel [in, out] and a Linear weight [out, in]).
  """

  def __init__(self, original, hf, transpose=False):
    self.original = original
    self.hf = hf
    self.transpose = transpose

  def relayout(self, value):
    """`value` in the other side's layout (transposing is its own inverse)."""
    return np.ascontiguousarray(value.T if self.transpose else value)


def _dense(original_scope, hf_scope):
  """Pairs of a dense layer: kernel <-> weight (transposed), bias <-> bias."""
  return [_Pair(original_scope + "/kernel", hf_scope + ".weight", True),
          _Pair(original_scope + "/bias", hf_scope + ".bias")]


def _layer_norm(original_scope, hf_scope):
  """Pairs of a LayerNorm: gamma <-> weight, beta <-> bias."""
  return [_Pair(original_scope + "/gamma", hf_scope + ".weight"),
          _Pair(original_scope + "/beta", hf_scope + ".bias")]


def _linear(original_scope, hf_scope):
  """Pairs of a head stored as the original `output_weights` [out, in]: no transpose."""
  return [_Pair(original_scope + "/output_weights", hf_scope + ".weight"),
          _Pair(original_scope + "/output_bias", hf_scope + ".bias")]


def model_type(config):
  """Hugging Face's `model_type` of a config: "albert" or "bert"."""
  return "albert" if config.uses_albert_encoder else "bert"


def encoder_pairs(config):
  """The encoder's tensors: original and Hugging Face names.

  Args:
    config: `BertConfig` (BERT or ALBERT).

  Returns:
    A list of `_Pair` covering every name of `weights.expected_shapes`.
  """
  kind = model_type(config)
  prefix = kind + "."
  pairs = [
      _Pair("bert/embeddings/" + table,
            prefix + "embeddings.%s.weight" % table)
      for table in ("word_embeddings", "position_embeddings",
                    "token_type_embeddings")]
  pairs += _layer_norm("bert/embeddings/LayerNorm",
                       prefix + "embeddings.LayerNorm")
  if kind == "albert":
    if config.embedding_width != config.hidden_size:
      pairs += _dense(ALBERT_MAPPING, prefix + HF_ALBERT_MAPPING)
    pairs += _dense("bert/pooler/dense", prefix + "pooler")
  else:
    pairs += _dense("bert/pooler/dense", prefix + "pooler.dense")
  for block in weights_lib.block_scopes(config):
    if kind == "albert":
      scope = prefix + "encoder.albert_layer_groups.%d.albert_layers.%d." % (
          block["index"])
    else:
      scope = prefix + "encoder.layer.%d." % block["index"]
    for role, hf_name in HF_BLOCK_NAMES[kind].items():
      make = _layer_norm if role in LAYER_NORM_ROLES else _dense
      pairs += make(block[role], scope + hf_name)
  return pairs


def head_pairs(config):
  """The heads' tensors: original and Hugging Face names.

  Args:
    config: `BertConfig`.

  Returns:
    A list of `_Pair` for the pretraining heads, run_classifier's head
    (`classifier.*`) and run_squad's (`qa_outputs.*`).
  """
  names = HF_HEAD_NAMES[model_type(config)]
  mlm = weights_lib.MLM_HEAD_PREFIX
  return (_dense(mlm + "transform/dense", names["transform_dense"]) +
          _layer_norm(mlm + "transform/LayerNorm",
                      names["transform_layer_norm"]) +
          [_Pair(mlm + "output_bias", names["mlm_bias"])] +
          _linear(weights_lib.NSP_SCOPE, names["next_sentence"]) +
          [_Pair(weights_lib.CLASSIFIER_WEIGHTS, "classifier.weight"),
           _Pair(weights_lib.CLASSIFIER_BIAS, "classifier.bias")] +
          _linear(weights_lib.SQUAD_SCOPE, "qa_outputs"))


def architecture(weights):
  """The `architectures` entry of `config.json` for the heads `weights` has.

  Args:
    weights: `BertWeights`.

  Returns:
    A transformers class name such as "BertForPreTraining".
  """
  kind = "Albert" if weights.is_albert else "Bert"
  if weights.has_pretraining_heads:
    return kind + ("ForPreTraining" if weights.has_next_sentence_head
                   else "ForMaskedLM")
  if weights.has_next_sentence_head and not weights.is_albert:
    return "BertForNextSentencePrediction"
  if weights.num_labels is not None:
    return kind + "ForSequenceClassification"
  if weights.has_squad_head:
    return kind + "ForQuestionAnswering"
  return kind + "Model"


# ----------------------------------------------------------------- detection


def _has(directory, name):
  """Whether file `name` exists in `directory`."""
  return tf.io.gfile.exists(os.path.join(directory, name))


def detect(path):
  """Whether `path` is a Hugging Face model directory.

  A directory with `config.json` carrying a `model_type` (or, written before
  transformers recorded it, a `hidden_size`; keras-hub presets have a
  `config.json` with neither) and weights: `model.safetensors`, its
  sharded index, or `pytorch_model.bin` (refused by `read` with advice). A
  `config.json` that is not JSON is claimed too, for `read` to name it.

  Args:
    path: a directory or file prefix.

  Returns:
    bool.
  """
  if not tf.io.gfile.isdir(path) or not _has(path, CONFIG_FILE):
    return False
  if not any(_has(path, name) for name in
             (SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE) + PYTORCH_FILES):
    return False
  try:
    config = read_json_file(os.path.join(path, CONFIG_FILE),
                            "Hugging Face config")
  except ValueError:
    return True  # Hugging Face's weights files: `read` names the bad JSON.
  # Configs written before transformers recorded model_type: BERT's keys.
  return isinstance(config, dict) and ("model_type" in config or
                                       "hidden_size" in config)


# ------------------------------------------------------------------- reading


def config_from_hf(hf_config, source):
  """The `BertConfig` of a Hugging Face BERT or ALBERT `config.json`.

  Args:
    hf_config: the parsed `config.json`.
    source: its path (for messages).

  Returns:
    `BertConfig` with the original keys (and ALBERT's for "albert").

  Raises:
    ValueError: for another `model_type`, an unknown `hidden_act`, a
      decoder, or a `layer_norm_eps` / `position_embedding_type` bert_tf
      cannot compute, naming the field and its value.
  """
  kind = hf_config.get("model_type")
  if kind is None and "hidden_size" in hf_config:
    # pytorch-pretrained-bert's configs had no model_type; ALBERT's have
    # embedding_size.
    kind = "albert" if "embedding_size" in hf_config else "bert"
    logging.info("%s has no model_type: read as %s", source, kind)
  if kind not in HF_DEFAULTS:
    raise ValueError(
        "%s: model_type %r is not supported (bert_tf reads Hugging Face "
        "model_type \"bert\" or \"albert\")" % (source, kind))
  values = {key: hf_config.get(key, default)
            for key, default in HF_DEFAULTS[kind].items()}
  act = values["hidden_act"]
  if act not in weights_lib.HF_ACTIVATIONS_TO_BERT:
    raise ValueError(
        "%s: hidden_act %r has no bert_tf equivalent (expected one of %s)" %
        (source, act, ", ".join(sorted(weights_lib.HF_ACTIVATIONS_TO_BERT))))
  values["hidden_act"] = weights_lib.HF_ACTIVATIONS_TO_BERT[act]
  eps = hf_config.get("layer_norm_eps", LAYER_NORM_EPS)
  if eps != LAYER_NORM_EPS:
    raise ValueError(
        "%s: layer_norm_eps %r is not supported (bert_tf's LayerNorm, as the "
        "original's, uses 1e-12)" % (source, eps))
  for key in ("is_decoder", "add_cross_attention"):
    if hf_config.get(key):
      raise ValueError(
          "%s: %s is true: a decoder (causal or cross-attending) BERT is not "
          "supported (bert_tf computes the bidirectional encoder)" %
          (source, key))
  positions = hf_config.get("position_embedding_type", "absolute")
  if positions != "absolute":
    raise ValueError(
        "%s: position_embedding_type %r is not supported (only \"absolute\", "
        "the original's learned position embeddings)" % (source, positions))
  return BertConfig.from_dict(values, source=source)


def _canonical_name(name, prefix):
  """A stored name under the canonical spelling `encoder_pairs` uses.

  Adds the model prefix to encoder names saved without it (a bare
  `BertModel`) and renames the legacy LayerNorm `gamma`/`beta`.

  Args:
    name: a tensor name as stored.
    prefix: the model prefix, "bert." or "albert.".

  Returns:
    The canonical name.
  """
  if name.startswith(ENCODER_ROOTS):
    name = prefix + name
  if name.endswith(".gamma"):
    name = name[:-len("gamma")] + "weight"
  elif name.endswith(".beta"):
    name = name[:-len("beta")] + "bias"
  return name


def _safetensors_files(directory):
  """The safetensors files of a directory: one file or the index's shards.

  Args:
    directory: a Hugging Face model directory.

  Returns:
    A list of paths.

  Raises:
    ValueError: for a directory with only PyTorch weights, or neither.
  """
  index_path = os.path.join(directory, SAFETENSORS_INDEX_FILE)
  if tf.io.gfile.exists(index_path):
    index = read_json_file(index_path, "safetensors index")
    if not isinstance(index, dict) or not isinstance(
        index.get("weight_map"), dict):
      raise ValueError("%s: expected a JSON object with a \"weight_map\" of "
                       "tensor name -> file" % index_path)
    return [os.path.join(directory, f)
            for f in sorted(set(index["weight_map"].values()))]
  if _has(directory, SAFETENSORS_FILE):
    return [os.path.join(directory, SAFETENSORS_FILE)]
  found = [name for name in PYTORCH_FILES if _has(directory, name)]
  if found:
    raise ValueError(
        "%s holds PyTorch weights (%s) but no %s: bert_tf reads safetensors "
        "(without PyTorch). Convert it with transformers, e.g. "
        "AutoModel.from_pretrained(dir).save_pretrained(dir, "
        "safe_serialization=True), or download the model's model.safetensors"
        % (directory, ", ".join(found), SAFETENSORS_FILE))
  raise ValueError("%s has no %s or %s" % (directory, SAFETENSORS_FILE,
                                            SAFETENSORS_INDEX_FILE))


def _load_tensors(directory, prefix):
  """Every tensor of a directory's safetensors files, by canonical name.

  Args:
    directory: a Hugging Face model directory.
    prefix: the model prefix (see `_canonical_name`).

  Returns:
    dict canonical name -> numpy array, in the stored dtype.
  """
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  tensors = {}
  for path in _safetensors_files(directory):
    if not tf.io.gfile.exists(path):
      raise ValueError("Safetensors shard not found: %s (listed in %s)" %
                       (path, SAFETENSORS_INDEX_FILE))
    # Through TensorFlow: numpy has no bfloat16, which ml_dtypes gives it.
    with safe_open(path, framework="tf") as f:
      for name in f.keys():
        tensors[_canonical_name(name, prefix)] = f.get_tensor(name).numpy()
  return tensors


def _tied_decoder_ok(stored, kind, source):
  """Whether a stored masked-LM decoder is tied as bert_tf's head is.

  bert_tf's masked-LM head (as the original's) multiplies by the word
  embeddings and adds `cls/predictions/output_bias`; a decoder stored with
  other values cannot be expressed.

  Args:
    stored: dict canonical name -> array.
    kind: "bert" or "albert".
    source: the directory (for the message).

  Returns:
    True when the decoder is tied away or equal to what the head computes;
    False (after a warning naming the tensor) otherwise.
  """
  names = HF_HEAD_NAMES[kind]
  word = stored.get(kind + ".embeddings.word_embeddings.weight")
  decoder = stored.get(names["decoder"] + ".weight")
  if decoder is not None and word is not None and not np.array_equal(
      decoder, word):
    logging.warning(
        "%s: %s.weight differs from the word embeddings (an untied output "
        "embedding); bert_tf's masked-LM head is tied to them, so the "
        "masked-LM head (cls/predictions/*) is left out", source,
        names["decoder"])
    return False
  bias = stored.get(names["mlm_bias"])
  decoder_bias = stored.get(names["decoder"] + ".bias")
  if bias is not None and decoder_bias is not None and not np.array_equal(
      bias, decoder_bias):
    logging.warning(
        "%s: %s.bias differs from %s; bert_tf's masked-LM head has one bias, "
        "so the masked-LM head (cls/predictions/*) is left out", source,
        names["decoder"], names["mlm_bias"])
    return False
  return True


def _warn_if_configs_differ(config, hf_config_as_bert, config_path):
  """Warns when a given config computes otherwise than `config.json` says.

  E.g. an original `bert_config.json` ("gelu": tanh) given for a Hugging
  Face model with "gelu" (erf), or fewer layers than the directory holds.
  """
  keys = [key for key in HF_DEFAULTS[model_type(hf_config_as_bert)]
          if not key.endswith(("dropout_prob", "initializer_range"))]
  differ = ["%s %r (config.json: %r)" % (
      key, getattr(config, key, None), getattr(hf_config_as_bert, key))
            for key in keys
            if getattr(config, key, None) != getattr(hf_config_as_bert, key)]
  if differ:
    logging.warning("The config given for %s differs from it: %s; the "
                    "given config is used", config_path, ", ".join(differ))


def read(path, config=None):
  """Reads a Hugging Face BERT/ALBERT directory into `BertWeights`.

  Args:
    path: the directory.
    config: `BertConfig` taking precedence over `config.json`, or None.

  Returns:
    `BertWeights` with the encoder and the heads the directory has, under
    the original names and layouts, the vocabulary / SentencePiece model and
    `do_lower_case` of `tokenizer_config.json`.

  Raises:
    ValueError: see `config_from_hf`; for PyTorch-only weights; for encoder
      tensors that are missing (naming Hugging Face's and the original name).
  """
  config_path = os.path.join(path, CONFIG_FILE)
  hf_config = read_json_file(config_path, "Hugging Face config")
  if not isinstance(hf_config, dict):
    raise ValueError("%s: expected a JSON object" % config_path)
  hf_config_as_bert = config_from_hf(hf_config, config_path)
  if config is None:
    config = hf_config_as_bert
  else:
    _warn_if_configs_differ(config, hf_config_as_bert, config_path)
  kind = model_type(config)
  stored = _load_tensors(path, kind + ".")
  # The decoder's bias is tied to the head's bias; either may be stored.
  names = HF_HEAD_NAMES[kind]
  if names["mlm_bias"] not in stored and names["decoder"] + ".bias" in stored:
    stored[names["mlm_bias"]] = stored[names["decoder"] + ".bias"]

  if kind == "albert" and config.embedding_width == config.hidden_size:
    _check_identity_mapping(stored, path)
  encoder = encoder_pairs(config)
  # The pooler may be absent (see `weights.POOLER_SCOPE`).
  missing = ["%s (%s)" % (p.hf, p.original) for p in encoder
             if p.hf not in stored and
             not p.original.startswith(weights_lib.POOLER_SCOPE)]
  if missing:
    raise ValueError(
        "%s lacks %d tensors of the %s encoder its config describes: %s. "
        "It holds: %s" % (path, len(missing), kind, ", ".join(missing),
                          ", ".join(sorted(stored)[:20]) +
                          (" ..." if len(stored) > 20 else "")))
  pairs = encoder + _heads_to_read(config, stored, hf_config, path)
  tensors = {p.original: p.relayout(stored[p.hf])
             for p in pairs if p.hf in stored}
  ignored = sorted(set(stored) - {p.hf for p in pairs})
  if ignored:
    logging.info("%s: %d tensors without a bert_tf equivalent ignored: %s",
                 path, len(ignored), ", ".join(ignored))
  vocab_file, spm_model_file = weights_lib.find_tokenizer_assets(path)
  return BertWeights(config=config, tensors=tensors, vocab_file=vocab_file,
                     spm_model_file=spm_model_file,
                     do_lower_case=_do_lower_case(path), source=path)


def _check_identity_mapping(stored, path):
  """Checks that an ALBERT's E -> H projection is the identity when E == H.

  Args:
    stored: dict canonical name -> array.
    path: the directory (for the message).

  Raises:
    ValueError: for another projection (the original ALBERT, and bert_tf,
      have none when embedding_size == hidden_size).
  """
  weight = stored.get("albert." + HF_ALBERT_MAPPING + ".weight")
  bias = stored.get("albert." + HF_ALBERT_MAPPING + ".bias")
  if weight is None:
    return
  if not (np.array_equal(weight, np.eye(len(weight), dtype=weight.dtype)) and
          (bias is None or not np.any(bias))):
    raise ValueError(
        "%s: albert.%s is not the identity, and embedding_size == "
        "hidden_size: the original ALBERT (and bert_tf) has no projection "
        "then, so this model cannot be expressed" % (path, HF_ALBERT_MAPPING))


def _heads_to_read(config, stored, hf_config, path):
  """The heads' pairs to read: all but those bert_tf's heads cannot express.

  Leaves out (with a warning) an untied masked-LM decoder's head and the
  `classifier.*` of a token or multiple-choice classifier.

  Args:
    config: `BertConfig`.
    stored: dict canonical name -> array.
    hf_config: the parsed `config.json` (its `architectures`).
    path: the directory (for messages).

  Returns:
    A list of `_Pair`.
  """
  heads = head_pairs(config)
  if not _tied_decoder_ok(stored, model_type(config), path):
    heads = [p for p in heads
             if not p.original.startswith(weights_lib.MLM_HEAD_PREFIX)]
  classes = hf_config.get("architectures") or []
  if "classifier.weight" in stored and any(
      c.endswith(OTHER_CLASSIFIERS) for c in classes):
    logging.warning("%s: classifier.* belongs to %s, not to a sequence "
                    "classifier (run_classifier's head); ignored",
                    path, ", ".join(classes))
    heads = [p for p in heads if not p.hf.startswith("classifier.")]
  return heads


def _do_lower_case(path):
  """`do_lower_case` of the directory's `tokenizer_config.json`, or None."""
  if not _has(path, TOKENIZER_CONFIG_FILE):
    return None
  tokenizer_config = read_json_file(
      os.path.join(path, TOKENIZER_CONFIG_FILE), "tokenizer config")
  if not isinstance(tokenizer_config, dict):
    return None
  return tokenizer_config.get("do_lower_case")


# ------------------------------------------------------------------- writing


def config_to_hf(weights):
  """The `config.json` of `weights` for transformers.

  Args:
    weights: `BertWeights` (its config passed `check_portable`).

  Returns:
    A dict: `architectures`, `model_type`, the encoder's keys (ALBERT's too),
    `hidden_act` mapped, `layer_norm_eps`, `pad_token_id`,
    `position_embedding_type`, and `id2label` / `label2id` for a classifier.
  """
  config = weights.config
  kind = model_type(config)
  hf_config = {"architectures": [architecture(weights)], "model_type": kind}
  for key in HF_DEFAULTS[kind]:
    hf_config[key] = getattr(config, key)
  if kind == "albert":
    hf_config["embedding_size"] = config.embedding_width
  hf_config["hidden_act"] = weights_lib.BERT_ACTIVATIONS_TO_HF[
      config.hidden_act]
  hf_config.update(layer_norm_eps=LAYER_NORM_EPS, pad_token_id=0,
                   position_embedding_type="absolute")
  if weights.num_labels is not None:
    labels = ["LABEL_%d" % i for i in range(weights.num_labels)]
    hf_config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    hf_config["label2id"] = {label: i for i, label in enumerate(labels)}
  return hf_config


def _write_json(value, path):
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _write_tokenizer(weights, directory):
  """Copies the vocabulary or SentencePiece model and writes its configs."""
  if weights.spm_model_file:
    tf.io.gfile.copy(weights.spm_model_file,
                     os.path.join(directory, SPM_MODEL_FILE))
    tokenizer_config = {"tokenizer_class": "AlbertTokenizer",
                        "remove_space": True, "keep_accents": False}
    special = {"bos_token": "[CLS]", "eos_token": "[SEP]",
               "unk_token": "<unk>", "sep_token": "[SEP]",
               "pad_token": "<pad>", "cls_token": "[CLS]",
               "mask_token": "[MASK]"}
  elif weights.vocab_file:
    tf.io.gfile.copy(weights.vocab_file,
                     os.path.join(directory, weights_lib.VOCAB_FILE_NAMES[0]))
    tokenizer_config = {"tokenizer_class": "BertTokenizer"}
    special = {"unk_token": "[UNK]", "sep_token": "[SEP]",
               "pad_token": "[PAD]", "cls_token": "[CLS]",
               "mask_token": "[MASK]"}
  else:
    return
  tokenizer_config["model_max_length"] = (
      weights.config.max_position_embeddings)
  do_lower_case = weights.do_lower_case
  if do_lower_case is None:
    do_lower_case = weights_lib.infer_do_lower_case(weights.vocab_file,
                                                    weights.spm_model_file)
    logging.warning(
        "The tokenizer's casing is not recorded with the input: "
        "do_lower_case=%s, judged by the vocabulary (%s upper-case tokens); "
        "pass --do_lower_case or --nodo_lower_case to set it", do_lower_case,
        "no" if do_lower_case else "it has")
  tokenizer_config["do_lower_case"] = bool(do_lower_case)
  tokenizer_config.update(special)
  _write_json(tokenizer_config, os.path.join(directory, TOKENIZER_CONFIG_FILE))
  _write_json(special, os.path.join(directory, SPECIAL_TOKENS_FILE))


def write(weights, directory):
  """Writes `weights` as a Hugging Face model directory.

  Args:
    weights: `BertWeights`.
    directory: an existing, empty directory.

  Returns:
    The original names written: the encoder and whichever heads `weights`
    has (see `head_pairs`).
  """
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  config = weights.config
  pairs = [p for p in encoder_pairs(config) + head_pairs(config)
           if p.original in weights.tensors]
  stored = {p.hf: p.relayout(weights.tensors[p.original]) for p in pairs}
  if weights.is_albert and config.embedding_width == config.hidden_size:
    # transformers' AlbertModel always projects; the identity is exact.
    dtype = weights.get("bert/embeddings/word_embeddings").dtype
    stored["albert." + HF_ALBERT_MAPPING + ".weight"] = np.eye(
        config.hidden_size, dtype=dtype)
    stored["albert." + HF_ALBERT_MAPPING + ".bias"] = np.zeros(
        config.hidden_size, dtype)
  save_file(stored, os.path.join(directory, SAFETENSORS_FILE),
            metadata={"format": "pt"})
  _write_json(config_to_hf(weights), os.path.join(directory, CONFIG_FILE))
  _write_tokenizer(weights, directory)
  return sorted(p.original for p in pairs)
