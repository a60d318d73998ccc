"""`BertWeights`: a model's config, tensors by original name, and tokenizer assets.

Every checkpoint format converts to and from this one representation, so a
conversion between two formats is a read into `BertWeights` and a write out of
it (docs/architecture.md, "Checkpoint formats"). The tensors are keyed by the
original google-research/bert (and google-research/albert) checkpoint names —
the names `BertModel` and the task models give their variables — and hold
numpy arrays in the original layouts (dense kernels [in, out],
`output_weights` [num_labels, hidden]).

Names a format may hold, besides the encoder (`bert/embeddings/*`,
`bert/encoder/*`, `bert/pooler/*`):
- pretraining heads: `cls/predictions/transform/{dense,LayerNorm}/*`,
  `cls/predictions/output_bias`, `cls/seq_relationship/output_{weights,bias}`;
- run_classifier's head: `output_weights` [num_labels, H], `output_bias`;
- run_squad's head: `cls/squad/output_weights` [2, H], `cls/squad/output_bias`.
"""

import dataclasses
import os
import re
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.modeling.config import BertConfig

# Encoder sub-layers of one Transformer block, by role, and their original
# names relative to the block's scope: BERT's `bert/encoder/layer_<i>` and
# ALBERT's `bert/encoder/transformer/group_<g>/inner_group_<i>`.
BERT_BLOCK_NAMES = {
    "query": "attention/self/query",
    "key": "attention/self/key",
    "value": "attention/self/value",
    "attention_output": "attention/output/dense",
    "attention_layer_norm": "attention/output/LayerNorm",
    "intermediate": "intermediate/dense",
    "output": "output/dense",
    "output_layer_norm": "output/LayerNorm",
}
ALBERT_BLOCK_NAMES = {
    "query": "attention_1/self/query",
    "key": "attention_1/self/key",
    "value": "attention_1/self/value",
    "attention_output": "attention_1/output/dense",
    "attention_layer_norm": "LayerNorm",
    "intermediate": "ffn_1/intermediate/dense",
    "output": "ffn_1/intermediate/output/dense",
    "output_layer_norm": "LayerNorm_1",
}

# Tokenizer files as released (google-research/bert, google-research/albert,
# Hugging Face), looked for in that order.
VOCAB_FILE_NAMES = ("vocab.txt",)
SPM_MODEL_FILE_NAMES = ("spiece.model", "30k-clean.model")

# The pooler (dense + tanh on [CLS]). A checkpoint may lack it (transformers'
# *ForMaskedLM / *ForQuestionAnswering / *ForTokenClassification have none):
# a model loading it initializes its pooler anew, as the original's
# init_checkpoint does for variables the checkpoint lacks.
POOLER_SCOPE = "bert/pooler/dense"

# Pretraining-head, classifier and SQuAD names (see the module docstring).
MLM_HEAD_PREFIX = "cls/predictions/"
NSP_SCOPE = "cls/seq_relationship"  # output_weights [2, H], output_bias
CLASSIFIER_WEIGHTS = "output_weights"
CLASSIFIER_BIAS = "output_bias"
SQUAD_SCOPE = "cls/squad"  # output_weights [2, H], output_bias

# `hidden_act` of a bert_config.json <-> the names other libraries use.
# The original's "gelu" is the tanh approximation; Hugging Face's "gelu" is
# the exact (erf) form, bert_tf's "gelu_erf".
HF_ACTIVATIONS_TO_BERT = {
    "gelu": "gelu_erf",
    "gelu_python": "gelu_erf",
    "gelu_new": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "gelu_fast": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}
BERT_ACTIVATIONS_TO_HF = {
    "gelu": "gelu_new",
    "gelu_erf": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}

# Config keys of bert_tf extensions that change the model's computation and
# that the other formats' models cannot express (their values other than
# these defaults are refused when writing such a format).
COMPUTATION_EXTENSIONS = {
    "position_embedding_type": "learned",
    "hierarchical_position_alpha": None,
    "tupe": None,
    "attention_type": "absolute",
}


@dataclasses.dataclass
class BertWeights:
  """A BERT or ALBERT model in a format-neutral form.

  Attributes:
    config: `BertConfig` of the encoder.
    tensors: dict original name -> numpy array (float32 unless the source
      held another float type), encoder plus whichever heads the source had.
    vocab_file: path of a WordPiece `vocab.txt`, or None.
    spm_model_file: path of a SentencePiece model, or None.
    do_lower_case: the tokenizer's casing, or None when unknown.
    source: where the weights were read from (for messages).
  """
  config: BertConfig
  tensors: Dict[str, np.ndarray]
  vocab_file: Optional[str] = None
  spm_model_file: Optional[str] = None
  do_lower_case: Optional[bool] = None
  source: str = "<memory>"

  @property
  def is_albert(self):
    """Whether the encoder is ALBERT's (factorized embeddings, shared groups)."""
    return self.config.uses_albert_encoder

  @property
  def has_pretraining_heads(self):
    """Whether the masked-LM head (`cls/predictions/*`) is present."""
    return MLM_HEAD_PREFIX + "output_bias" in self.tensors

  @property
  def has_next_sentence_head(self):
    """Whether the NSP/SOP head (`cls/seq_relationship/*`) is present."""
    return NSP_SCOPE + "/output_weights" in self.tensors

  @property
  def num_labels(self):
    """Classes of run_classifier's head (`output_weights`), or None."""
    weights = self.tensors.get(CLASSIFIER_WEIGHTS)
    return None if weights is None else int(weights.shape[0])

  @property
  def has_pooler(self):
    """Whether the pooler (`bert/pooler/dense/*`) is present."""
    return POOLER_SCOPE + "/kernel" in self.tensors

  @property
  def has_squad_head(self):
    """Whether run_squad's span head (`cls/squad/*`) is present."""
    return SQUAD_SCOPE + "/output_weights" in self.tensors

  def get(self, name):
    """The tensor `name`, or a ValueError naming it and the source."""
    if name not in self.tensors:
      raise ValueError("%s lacks the tensor %s (a %s model with config %s)" %
                       (self.source, name,
                        "ALBERT" if self.is_albert else "BERT",
                        self.config.to_json_string().replace("\n", "")))
    return self.tensors[name]


def block_scopes(config):
  """The encoder's stored Transformer blocks and the original names of their parts.

  BERT stores one block per layer; ALBERT stores `inner_group_num` blocks per
  group, shared across the layers of that group.

  Args:
    config: `BertConfig`.

  Returns:
    A list with one dict per stored block, in order (BERT: layer 0..L-1;
    ALBERT: group 0 inner 0, group 0 inner 1, ...), mapping each role of
    `BERT_BLOCK_NAMES` to the full original name prefix, e.g.
    "bert/encoder/layer_3/attention/self/query". The dict also carries
    "index" (the layer, or the (group, inner) pair).
  """
  blocks = []
  if config.uses_albert_encoder:
    for group in range(config.num_hidden_groups):
      for inner in range(config.inner_group_num):
        scope = "bert/encoder/transformer/group_%d/inner_group_%d/" % (
            group, inner)
        names = {role: scope + name
                 for role, name in ALBERT_BLOCK_NAMES.items()}
        names["index"] = (group, inner)
        blocks.append(names)
  else:
    for layer in range(config.num_hidden_layers):
      scope = "bert/encoder/layer_%d/" % layer
      names = {role: scope + name for role, name in BERT_BLOCK_NAMES.items()}
      names["index"] = layer
      blocks.append(names)
  return blocks


def check_portable(config, to_format):
  """Refuses configs whose computation the target format's models cannot express.

  Args:
    config: `BertConfig`.
    to_format: the target format's name (for the message).

  Raises:
    ValueError: naming the config key and its value.
  """
  for key, default in COMPUTATION_EXTENSIONS.items():
    value = getattr(config, key, default)
    if value != default:
      raise ValueError(
          "bert_config key %r = %r has no equivalent in the %s format (its "
          "models compute only the original BERT/ALBERT); only %r converts" %
          (key, value, to_format, default))


def check_shapes(tensors, expected, source):
  """Checks tensors against expected shapes, naming every problem.

  Args:
    tensors: dict name -> array.
    expected: dict name -> shape tuple, the names that must be present.
    source: where the tensors came from (for the message).

  Raises:
    ValueError: listing missing tensors and shape mismatches (with both shapes).
  """
  missing = sorted(n for n in expected if n not in tensors)
  wrong = ["%s: expected %s, found %s" % (n, list(expected[n]),
                                           list(tensors[n].shape))
           for n in sorted(expected)
           if n in tensors and tuple(tensors[n].shape) != tuple(expected[n])]
  problems = []
  if missing:
    problems.append("missing tensors: %s" % ", ".join(missing))
  if wrong:
    problems.append("shape mismatches: %s" % "; ".join(wrong))
  if problems:
    raise ValueError("%s does not fit its config: %s" %
                     (source, " | ".join(problems)))


def expected_shapes(config, pooler=True):
  """The original names and shapes of the encoder a config describes.

  Args:
    config: `BertConfig` (BERT or ALBERT, learned positions).
    pooler: whether to include the pooler.

  Returns:
    dict name -> shape tuple for `bert/embeddings/*`, `bert/encoder/*` and
    (with `pooler`) `bert/pooler/*`.
  """
  h = config.hidden_size
  e = config.embedding_size or h
  i = config.intermediate_size
  shapes = {
      "bert/embeddings/word_embeddings": (config.vocab_size, e),
      "bert/embeddings/token_type_embeddings": (config.type_vocab_size, e),
      "bert/embeddings/LayerNorm/gamma": (e,),
      "bert/embeddings/LayerNorm/beta": (e,),
  }
  if pooler:
    shapes[POOLER_SCOPE + "/kernel"] = (h, h)
    shapes[POOLER_SCOPE + "/bias"] = (h,)
  if config.position_embedding_type == "learned" and not config.tupe:
    shapes["bert/embeddings/position_embeddings"] = (
        config.max_position_embeddings, e)
  if config.uses_albert_encoder and e != h:
    # As the original ALBERT, only a projection that changes the width.
    shapes["bert/encoder/embedding_hidden_mapping_in/kernel"] = (e, h)
    shapes["bert/encoder/embedding_hidden_mapping_in/bias"] = (h,)
  dense = {"query": (h, h), "key": (h, h), "value": (h, h),
           "attention_output": (h, h), "intermediate": (h, i),
           "output": (i, h)}
  for block in block_scopes(config):
    for role, (n_in, n_out) in dense.items():
      shapes[block[role] + "/kernel"] = (n_in, n_out)
      shapes[block[role] + "/bias"] = (n_out,)
    for role in ("attention_layer_norm", "output_layer_norm"):
      shapes[block[role] + "/gamma"] = (h,)
      shapes[block[role] + "/beta"] = (h,)
  return shapes


def infer_do_lower_case(vocab_file=None, spm_model_file=None):
  """Whether a tokenizer lower-cases, judged by its vocabulary.

  A cased vocabulary (google-research/bert's `cased_*`) has upper-case
  tokens; an uncased one (`uncased_*`, Chinese, ALBERT's SentencePiece
  models) has none outside special tokens such as `[CLS]` or `<unk>`.

  Args:
    vocab_file: a WordPiece `vocab.txt`, or None.
    spm_model_file: a SentencePiece model, or None.

  Returns:
    True (no upper-case token), False, or None without a vocabulary.
  """
  if spm_model_file:
    sp_model = tokenization.load_sentencepiece_model(spm_model_file)
    tokens = [sp_model.id_to_piece(i) for i in range(sp_model.get_piece_size())]
  elif vocab_file:
    tokens = list(tokenization.load_vocab(vocab_file))
  else:
    return None
  return not any(token != token.lower() for token in tokens
                 if not re.fullmatch(r"\[.*\]|<.*>", token))


def find_tokenizer_assets(directory):
  """The WordPiece vocabulary and SentencePiece model files in a directory.

  Args:
    directory: a local or gfile directory.

  Returns:
    (vocab_file or None, spm_model_file or None).
  """
  def first(names):
    for name in names:
      path = os.path.join(directory, name)
      if tf.io.gfile.exists(path):
        return path
    return None
  return (first(VOCAB_FILE_NAMES), first(SPM_MODEL_FILE_NAMES))
