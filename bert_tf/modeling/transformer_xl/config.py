"""`TransformerXLConfig`: the hyperparameters of kimiyoung/transformer-xl.

The fields are the original flags of `tf/train_gpu.py` with their defaults;
a config reads from a JSON file of those names (`from_json_file`) or from a
`bert_config.json` with `attention_type: relative_xl` (`from_bert_config`).
"""

import dataclasses

import keras

from bert_tf.modeling import config as config_lib

INITS = ("normal", "uniform")

# Keys of the original run configuration that describe the data or the run,
# not the model: `TransformerXLConfig.from_dict` accepts and ignores them.
RUN_KEYS = ("tgt_len", "eval_tgt_len", "batch_size", "train_batch_size",
            "eval_batch_size", "note")


@dataclasses.dataclass
class TransformerXLConfig(object):
  """Hyperparameters of the model: the original flags of `train_gpu.py`.

  The defaults are the original flag defaults; `n_token` (the vocabulary
  size, from the original corpus-info.json) has none.

  Attributes:
    n_token: vocabulary size.
    n_layer: number of layers.
    d_model: width of the hidden states.
    d_embed: width of the embeddings (projected to d_model if different).
    n_head: number of attention heads.
    d_head: width of one head.
    d_inner: width of the feed-forward layer.
    dropout: dropout rate of the embeddings, positions and layer outputs.
    dropatt: dropout rate of the attention probabilities.
    mem_len: number of positions cached as memory (0: the memory passed in
      is returned unchanged, as the original).
    same_length: every query attends to the same number of keys.
    clamp_len: relative distances above this are clamped (-1: none).
    untie_r: one pair of `r_w_bias`/`r_r_bias` per layer instead of one
      shared pair.
    init: "normal" (stddev `init_std`) or "uniform" (+-`init_range`).
    init_std: stddev of the normal initializer.
    proj_init_std: stddev of the embedding projections (normal init).
    init_range: range of the uniform initializer.
    cutoffs: ascending token ids where the adaptive softmax bins start
      (empty: a plain softmax).
    div_val: each bin's embedding width is d_embed // div_val**bin.
    proj_share_all_but_first: tie the softmax projections of all bins but
      the first to the embedding projections.
    proj_same_dim: give a bin a projection even when its width is d_model.
  """
  n_token: int
  n_layer: int = 6
  d_model: int = 500
  d_embed: int = 500
  n_head: int = 10
  d_head: int = 50
  d_inner: int = 1000
  dropout: float = 0.1
  dropatt: float = 0.1
  mem_len: int = 70
  same_length: bool = False
  clamp_len: int = -1
  untie_r: bool = False
  init: str = "normal"
  init_std: float = 0.02
  proj_init_std: float = 0.01
  init_range: float = 0.1
  cutoffs: list = dataclasses.field(default_factory=list)
  div_val: int = 1
  proj_share_all_but_first: bool = False
  proj_same_dim: bool = True

  @classmethod
  def from_dict(cls, values, source="config"):
    """Builds a validated config from a dict of the original flag names.

    Args:
      values: dict of field names to values; the keys of `RUN_KEYS` are
        ignored.
      source: where the dict came from, for error messages.

    Returns:
      A validated `TransformerXLConfig`.

    Raises:
      ValueError: for an unknown key, a missing `n_token` or an invalid value.
    """
    if not isinstance(values, dict):
      raise ValueError("%s: expected a JSON object of Transformer-XL config "
                       "keys, found %s" % (source, type(values).__name__))
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names - set(RUN_KEYS))
    if unknown:
      raise ValueError("%s: unknown Transformer-XL config key(s) %s (expected "
                       "some of %s)" % (source, ", ".join(unknown),
                                        ", ".join(sorted(names))))
    if "n_token" not in values:
      raise ValueError("%s: missing required field 'n_token' (the vocabulary "
                       "size, an int > 0)" % source)
    config = cls(**{k: v for k, v in values.items() if k in names})
    config.cutoffs = list(config.cutoffs)
    config.validate(source)
    return config

  @classmethod
  def from_json_file(cls, json_file):
    """Reads a config from a JSON file (see `from_dict`).

    Args:
      json_file: path of the file.

    Returns:
      A validated `TransformerXLConfig`.

    Raises:
      ValueError: if the file is missing, not JSON, or has invalid fields.
    """
    return cls.from_dict(
        config_lib.read_json_file(json_file, "Transformer-XL config file"),
        source=json_file)

  @classmethod
  def from_bert_config(cls, bert_config, source="bert_config"):
    """Maps a BERT config with `attention_type: relative_xl` to this config.

    `vocab_size` -> n_token, `num_hidden_layers` -> n_layer, `hidden_size` ->
    d_model and d_embed, `num_attention_heads` -> n_head (d_head =
    hidden_size / heads), `intermediate_size` -> d_inner,
    `hidden_dropout_prob` -> dropout, `attention_probs_dropout_prob` ->
    dropatt, `initializer_range` -> init_std; `mem_len`, `clamp_len`,
    `same_length` and `untie_r` keep their names.

    Args:
      bert_config: a dict of `bert_config.json` keys (or an object with a
        `to_dict` method).
      source: where it came from, for error messages.

    Returns:
      A validated `TransformerXLConfig`.

    Raises:
      ValueError: if `attention_type` is not "relative_xl", `hidden_act` is
        not "relu" (the Transformer-XL feed-forward), or a value is invalid.
    """
    values = (bert_config.to_dict() if hasattr(bert_config, "to_dict")
              else dict(bert_config))
    if values.get("attention_type") != "relative_xl":
      raise ValueError("%s: field 'attention_type' must be 'relative_xl' for "
                       "Transformer-XL, found %r" %
                       (source, values.get("attention_type")))
    if values.get("hidden_act", "gelu") != "relu":
      raise ValueError("%s: field 'hidden_act' must be 'relu' for "
                       "Transformer-XL (its feed-forward is ReLU), found %r" %
                       (source, values.get("hidden_act", "gelu")))
    if "vocab_size" not in values:
      raise ValueError("%s: missing required field 'vocab_size'" % source)
    hidden = values.get("hidden_size", 768)
    heads = values.get("num_attention_heads", 12)
    if hidden % heads:
      raise ValueError("%s: hidden_size (%d) is not a multiple of "
                       "num_attention_heads (%d)" % (source, hidden, heads))
    return cls.from_dict({
        "n_token": values["vocab_size"],
        "n_layer": values.get("num_hidden_layers", 12),
        "d_model": hidden,
        "d_embed": hidden,
        "n_head": heads,
        "d_head": hidden // heads,
        "d_inner": values.get("intermediate_size", 3072),
        "dropout": values.get("hidden_dropout_prob", 0.1),
        "dropatt": values.get("attention_probs_dropout_prob", 0.1),
        "init_std": values.get("initializer_range", 0.02),
        "mem_len": values.get("mem_len", 0),
        "clamp_len": values.get("clamp_len", -1),
        "same_length": values.get("same_length", False),
        "untie_r": values.get("untie_r", False),
    }, source=source)

  def to_dict(self):
    """Returns the config as a dict of the original flag names."""
    return dataclasses.asdict(self)

  def validate(self, source="config"):
    """Checks every field; raises a ValueError naming the first bad one.

    Args:
      source: where the config came from, for error messages.

    Raises:
      ValueError: on an invalid field.
    """
    def fail(field, expected):
      raise ValueError("%s: field '%s' must be %s, found %r" %
                       (source, field, expected, getattr(self, field)))


    for field in ("n_token", "n_layer", "d_model", "d_embed", "n_head",
                  "d_head", "d_inner", "div_val"):
      if not config_lib.is_int(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "an int > 0")
    for field in ("dropout", "dropatt"):
      value = getattr(self, field)
      if not config_lib.is_number(value) or not 0.0 <= value < 1.0:
        fail(field, "a number in [0, 1)")
    if not config_lib.is_int(self.mem_len) or self.mem_len < 0:
      fail("mem_len", "an int >= 0")
    if not config_lib.is_int(self.clamp_len):
      fail("clamp_len", "an int (-1 or 0: no clamping)")
    for field in ("same_length", "untie_r", "proj_share_all_but_first",
                  "proj_same_dim"):
      if not isinstance(getattr(self, field), bool):
        fail(field, "true or false")
    if self.init not in INITS:
      fail("init", "one of %s" % ", ".join(INITS))
    for field in ("init_std", "proj_init_std", "init_range"):
      if not config_lib.is_number(getattr(self, field)) or getattr(self, field) <= 0:
        fail(field, "a number > 0")
    bounds = [0] + list(self.cutoffs) + [self.n_token]
    if (not all(config_lib.is_int(c) for c in self.cutoffs) or
        any(a >= b for a, b in zip(bounds, bounds[1:]))):
      fail("cutoffs", "ascending ints strictly between 0 and n_token (%d)" %
           self.n_token)
    if self.div_val > 1 and not self.cutoffs:
      fail("div_val", "1 when there are no cutoffs")
    if any(self.d_embed // self.div_val ** i == 0
           for i in range(len(self.cutoffs) + 1)):
      fail("div_val", "small enough that every bin keeps a width >= 1 "
           "(d_embed // div_val**bin)")

  @property
  def tie_projs(self):
    """Per bin: whether the softmax reuses the embedding projection."""
    return [self.proj_share_all_but_first and i > 0
            for i in range(len(self.cutoffs) + 1)]

  def initializers(self):
    """The original (initializer, proj_initializer) of `train_gpu.py`.

    Returns:
      Two Keras initializers: of the weights, and of the embedding and
      softmax projections.
    """
    if self.init == "uniform":
      initializer = keras.initializers.RandomUniform(-self.init_range,
                                                     self.init_range)
      return initializer, initializer
    return (keras.initializers.RandomNormal(stddev=self.init_std),
            keras.initializers.RandomNormal(stddev=self.proj_init_std))
