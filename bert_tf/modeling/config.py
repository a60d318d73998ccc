"""`BertConfig`: the original configuration object, with validation and extension keys.

The public API is the original one (`from_dict`, `from_json_file`, `to_dict`,
`to_json_string`). A `bert_config.json` written for google-research/bert (or an
`albert_config.json`) loads as is: keys the original knows take its defaults when
absent, keys nobody here knows are kept (and written back by `to_dict`), and each
extension key (see `EXTENSION_DEFAULTS`) has a default that means "as the original".

ALBERT: a config carrying any of ALBERT's own keys (`embedding_size`,
`num_hidden_groups`, `inner_group_num`, see `ALBERT_KEYS`) builds ALBERT's
encoder, as google-research/albert `AlbertModel` does whatever their values
(`uses_albert_encoder`). The other keys released `albert_config.json` files
carry (`ALBERT_NO_OP_KEYS`: `down_scale_factor`, `net_structure_type`,
`gap_size`, `num_memory_blocks`, `layers_to_keep`) are unused by the original
modeling code; they are accepted at their no-op values and refused otherwise.
"""

import copy
import json

import tensorflow as tf

# The original BertConfig.__init__ defaults. `vocab_size` has none: it is required.
ORIGINAL_DEFAULTS = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 16,
    "initializer_range": 0.02,
}

# The keys every bert_config.json of the original carries; a config file
# must have them all (`from_json_file`).
ORIGINAL_KEYS = ("vocab_size",) + tuple(ORIGINAL_DEFAULTS)

# Extension keys (docs/architecture.md, "Contracts"). Absent means the value
# below, which is the original behaviour. They are class attributes, so a plain
# original config round-trips through `to_dict` without gaining keys.
EXTENSION_DEFAULTS = {
    "position_embedding_type": "learned",
    "hierarchical_position_alpha": None,
    "tupe": None,
    "tupe_num_buckets": 32,
    "tupe_max_distance": 128,
    "embedding_size": None,
    "num_hidden_groups": 1,
    "inner_group_num": 1,
    "attention_type": "absolute",
    "mem_len": 0,
    "clamp_len": -1,
    "same_length": False,
    "untie_r": False,
    "attention_chunk_size": None,
    # SpanBERT's span boundary objective head (built only when the records
    # carry span boundaries): width of its position-in-span embedding and
    # the number of its rows (span tokens past it get no SBO prediction).
    "span_boundary_position_embedding_size": 200,
    "span_boundary_max_span_length": 15,
}

# ALBERT's keys: their presence selects ALBERT's encoder (`uses_albert_encoder`).
ALBERT_KEYS = ("embedding_size", "num_hidden_groups", "inner_group_num")

# Other keys of released ALBERT configs, with the values that mean "nothing":
# the original AlbertModel reads none of them. Other values are refused.
ALBERT_NO_OP_KEYS = {
    "down_scale_factor": (1,),
    "net_structure_type": (0,),
    "gap_size": (0,),
    "num_memory_blocks": (0,),
    "layers_to_keep": ([], None),
}

# "gelu" is the original's tanh approximation; "gelu_erf" the exact form
# (Hugging Face's "gelu"), for weights converted from libraries that use it.
HIDDEN_ACTIVATIONS = ("gelu", "gelu_erf", "relu", "tanh", "linear")
POSITION_EMBEDDING_TYPES = ("learned", "sinusoidal", "none")
TUPE_TYPES = (None, "absolute", "relative")

_POSITIVE_INTS = ("vocab_size", "hidden_size", "num_hidden_layers",
                  "num_attention_heads", "intermediate_size",
                  "max_position_embeddings", "type_vocab_size")
_PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob")


def is_int(value):
  """Whether a JSON value is an int (bools are not)."""
  return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
  """Whether a JSON value is an int or a float (bools are not)."""
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_json_value(a, b):
  """JSON equality that keeps bools apart from numbers (True != 1)."""
  if isinstance(a, bool) or isinstance(b, bool):
    return a is b
  return a == b


def read_json_file(json_file, description):
  """Reads a JSON file, with errors that name the file.

  Args:
    json_file: path of the file.
    description: what the file is, for messages ("BERT config file").

  Returns:
    The parsed JSON value.

  Raises:
    ValueError: if the file is missing or not valid JSON.
  """
  if not tf.io.gfile.exists(json_file):
    raise ValueError("%s not found: %s" % (description, json_file))
  with tf.io.gfile.GFile(json_file, "r") as reader:
    text = reader.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError("%s %s is not valid JSON: %s" %
                     (description, json_file, e)) from None


class BertConfig(object):
  """Configuration for `BertModel`, with the original constructor and API."""

  locals().update(EXTENSION_DEFAULTS)

  def __init__(self,
               vocab_size,
               hidden_size=768,
               num_hidden_layers=12,
               num_attention_heads=12,
               intermediate_size=3072,
               hidden_act="gelu",
               hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1,
               max_position_embeddings=512,
               type_vocab_size=16,
               initializer_range=0.02,
               **extra):
    """Constructs a BertConfig.

    Args:
      vocab_size: Vocabulary size of `input_ids`.
      hidden_size: Size of the encoder layers and the pooler layer.
      num_hidden_layers: Number of hidden layers in the Transformer encoder.
      num_attention_heads: Number of attention heads for each attention layer.
      intermediate_size: Size of the "intermediate" (feed-forward) layer.
      hidden_act: Non-linear activation of the encoder and pooler
        ("gelu": the original's tanh approximation; "gelu_erf": the exact
        form, Hugging Face's "gelu"; "relu", "tanh" or "linear").
      hidden_dropout_prob: Dropout probability for all fully connected layers
        in the embeddings, encoder and pooler.
      attention_probs_dropout_prob: Dropout ratio for the attention
        probabilities.
      max_position_embeddings: The maximum sequence length the model can see.
      type_vocab_size: Vocabulary size of `segment_ids` (`token_type_ids`).
      initializer_range: Stddev of the truncated normal initializer of all
        weight matrices.
      **extra: Extension keys (see `EXTENSION_DEFAULTS`) and any other keys,
        kept as attributes and written back by `to_dict`.
    """
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.intermediate_size = intermediate_size
    self.hidden_act = hidden_act
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range
    for key, value in extra.items():
      setattr(self, key, value)

  @classmethod
  def from_dict(cls, json_object, source="config"):
    """Constructs a `BertConfig` from a Python dictionary of parameters.

    Args:
      json_object: dict of config keys to values.
      source: where the dict came from, for error messages.

    Returns:
      A validated `BertConfig`.

    Raises:
      ValueError: if a field is missing, of the wrong type, or inconsistent.
    """
    if not isinstance(json_object, dict):
      raise ValueError("%s: expected a JSON object of config keys, found %s" %
                       (source, type(json_object).__name__))
    if "vocab_size" not in json_object:
      raise ValueError("%s: missing required field 'vocab_size' (an int > 0)" %
                       source)
    config = cls(**json_object)
    config.validate(source)
    return config

  @classmethod
  def from_json_file(cls, json_file):
    """Constructs a `BertConfig` from a json file of parameters.

    Args:
      json_file: path of a `bert_config.json` (or `albert_config.json`).

    Returns:
      A validated `BertConfig`.

    Raises:
      ValueError: if the file is missing, not JSON, lacks one of the eleven
        original keys (`ORIGINAL_KEYS`; every released config has them all,
        and a missing one would silently take the original's default), or
        has invalid fields.
    """
    values = read_json_file(json_file, "BERT config file")
    if isinstance(values, dict):
      missing = [key for key in ORIGINAL_KEYS if key not in values]
      if missing:
        raise ValueError(
            "%s: missing required field %r; a bert_config.json carries the "
            "eleven original keys (%s), this one lacks %s" %
            (json_file, missing[0], ", ".join(ORIGINAL_KEYS),
             ", ".join(missing)))
    return cls.from_dict(values, source=json_file)

  def to_dict(self):
    """Serializes this instance to a Python dictionary."""
    return copy.deepcopy(self.__dict__)

  def to_json_string(self):
    """Serializes this instance to a JSON string."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  @property
  def attention_head_size(self):
    """The width of one attention head (hidden_size / num_attention_heads)."""
    return self.hidden_size // self.num_attention_heads

  @property
  def embedding_width(self):
    """Width of the embedding tables (ALBERT's `embedding_size` if set)."""
    return self.embedding_size or self.hidden_size

  @property
  def uses_albert_encoder(self):
    """Whether the encoder is ALBERT's (scopes `transformer/group_<g>/...`).

    True when the config carries any of `ALBERT_KEYS` with a non-null value,
    as an original `albert_config.json` does; a plain `bert_config.json`
    builds BERT's `layer_<i>` encoder.
    """
    return any(self.__dict__.get(key) is not None for key in ALBERT_KEYS)

  @property
  def num_encoder_outputs(self):
    """How many tensors the encoder returns (`encoder_outputs`).

    One per layer for BERT; for ALBERT one per inner block, as the original
    `transformer_model` appends every inner group's output:
    num_hidden_layers * inner_group_num.
    """
    if self.uses_albert_encoder:
      return self.num_hidden_layers * self.inner_group_num
    return self.num_hidden_layers

  def albert_group_index(self, layer_index):
    """The parameter group of a layer, as the original ALBERT computes it.

    Args:
      layer_index: int in [0, num_hidden_layers).

    Returns:
      int(layer_index / num_hidden_layers * num_hidden_groups), the same
      float expression as google-research/albert `transformer_model`.
    """
    return int(layer_index / self.num_hidden_layers * self.num_hidden_groups)

  def validate(self, source="config"):
    """Checks every field the model reads; raises a ValueError naming it.

    Args:
      source: where the config came from (a file name), for error messages.

    Raises:
      ValueError: on the first invalid field.
    """
    def fail(field, expected):
      raise ValueError("%s: field '%s' must be %s, found %r" %
                       (source, field, expected, getattr(self, field)))

    for field in _POSITIVE_INTS:
      if not is_int(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "an int > 0")
    for field in _PROBABILITIES:
      value = getattr(self, field)
      if not is_number(value) or not 0.0 <= value < 1.0:
        fail(field, "a number in [0, 1)")
    if not is_number(self.initializer_range) or self.initializer_range <= 0:
      fail("initializer_range", "a number > 0")
    if self.hidden_act not in HIDDEN_ACTIVATIONS:
      fail("hidden_act", "one of %s" % ", ".join(HIDDEN_ACTIVATIONS))
    if self.hidden_size % self.num_attention_heads != 0:
      raise ValueError(
          "%s: hidden_size (%d) is not a multiple of num_attention_heads (%d)" %
          (source, self.hidden_size, self.num_attention_heads))
    if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
      fail("position_embedding_type",
           "one of %s" % ", ".join(POSITION_EMBEDDING_TYPES))
    self._validate_albert(fail)
    self._validate_positions(fail)
    for field in ("span_boundary_position_embedding_size",
                  "span_boundary_max_span_length"):
      if not is_int(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "an int > 0")
    if self.attention_chunk_size is not None and (
        not is_int(self.attention_chunk_size) or
        self.attention_chunk_size <= 0):
      fail("attention_chunk_size", "null (full attention) or an int > 0")
    # Extensions that later versions implement: refuse rather than ignore them.
    if self.attention_type != "absolute":
      fail("attention_type", "'absolute' in this version of bert_tf (not "
           "implemented yet)")

  def _validate_albert(self, fail):
    """Checks ALBERT's keys (`ALBERT_KEYS` and `ALBERT_NO_OP_KEYS`)."""
    if self.embedding_size is not None and (
        not is_int(self.embedding_size) or self.embedding_size <= 0):
      fail("embedding_size", "null or an int > 0")
    for field in ("num_hidden_groups", "inner_group_num"):
      if not is_int(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "an int > 0")
    for field, no_op_values in ALBERT_NO_OP_KEYS.items():
      if field in self.__dict__ and not any(
          _same_json_value(getattr(self, field), value)
          for value in no_op_values):
        fail(field, "%s (the original ALBERT modeling code does not use this "
             "key; other values are not supported)" %
             " or ".join(json.dumps(value) for value in no_op_values))

  def _validate_positions(self, fail):
    """Checks `hierarchical_position_alpha` and the `tupe*` keys."""
    alpha = self.hierarchical_position_alpha
    if alpha is not None:
      if not is_number(alpha) or not 0.0 < alpha < 1.0 or alpha == 0.5:
        fail("hierarchical_position_alpha",
             "null or a number in (0, 1) other than 0.5 (e.g. 0.4)")
      if self.position_embedding_type != "learned":
        fail("hierarchical_position_alpha", "null when position_embedding_type "
             "is %r (it decomposes the learned table)" %
             self.position_embedding_type)
    if self.tupe not in TUPE_TYPES:
      fail("tupe", "null, \"absolute\" or \"relative\"")
    for field in ("tupe_num_buckets", "tupe_max_distance"):
      if not is_int(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "an int > 0")
    if self.tupe_num_buckets < 4 or self.tupe_num_buckets % 2 != 0:
      fail("tupe_num_buckets", "an even int >= 4 (half the buckets for each "
           "direction, half of those exact)")
    if self.tupe_max_distance <= self.tupe_num_buckets // 4:
      fail("tupe_max_distance", "larger than tupe_num_buckets / 4 (%d), the "
           "last exact distance" % (self.tupe_num_buckets // 4))
    if self.tupe is not None:
      if self.position_embedding_type != "learned":
        fail("position_embedding_type", "\"learned\" (the default) with tupe: "
             "TUPE replaces the input position embeddings by its own table")
      if alpha is not None:
        fail("hierarchical_position_alpha", "null with tupe (TUPE has its own "
             "position table)")

  def check_max_seq_length(self, max_seq_length):
    """The original check of `--max_seq_length` against the model's positions.

    Args:
      max_seq_length: the flag's value.

    Raises:
      ValueError: if the model cannot encode sequences that long (the
        original's message, with the limit of `max_seq_length_limit`).
    """
    limit = self.max_seq_length_limit
    if limit is not None and max_seq_length > limit:
      raise ValueError(
          "Cannot use sequence length %d because the BERT model "
          "was only trained up to sequence length %d" % (max_seq_length, limit))

  def check_vocab_size(self, vocab_size, vocab_source):
    """Checks that a tokenizer's ids all have a row in the embedding table.

    Args:
      vocab_size: the number of ids the tokenizer produces (its largest id
        plus one).
      vocab_source: the vocabulary or SentencePiece model file (or flag), for
        the message.

    Raises:
      ValueError: if the vocabulary is larger than `vocab_size`, naming both
        (a vocabulary of another model would fail deep in the graph with an
        index error, or silently read wrong rows).
    """
    if vocab_size > self.vocab_size:
      raise ValueError(
          "%s has %d entries but the config's vocab_size is %d: the tokenizer "
          "would produce ids past the model's embedding table (is it the "
          "vocabulary this checkpoint was trained with?)" %
          (vocab_source, vocab_size, self.vocab_size))

  @property
  def max_seq_length_limit(self):
    """The longest sequence the model can encode.

    `max_position_embeddings` for learned positions and TUPE, its square with
    `hierarchical_position_alpha`, and None (no limit) for "sinusoidal" and
    "none". Scripts check their `max_seq_length` flag against it.
    """
    if self.tupe is not None:
      return self.max_position_embeddings
    if self.position_embedding_type != "learned":
      return None
    if self.hierarchical_position_alpha is not None:
      return self.max_position_embeddings ** 2
    return self.max_position_embeddings
