"""SavedModel export for TF Serving: token ids, tf.Examples or raw text in one model.

One SavedModel carries three signatures over the same weights:

- `serving_default`: int32 `input_ids`, `input_mask`, `segment_ids` [batch, seq]
  (both dimensions dynamic; `pretraining` also takes `masked_lm_positions`).
  Inputs are declared with unknown rank and their rank is checked in the graph
  (a loaded signature checks dtypes only), so a wrong rank is an error naming
  the input.
- `serve_examples`: serialized `tf.Example`s with the fine-tuning features
  (`input_ids`, `input_mask`, `segment_ids` of length `max_seq_length`).
- `serve_text`: string `text_a` and `text_b` [batch] (an empty `text_b` means a
  single segment). Tokenization runs in the graph with exactly the ids of
  `FullTokenizer` (`bert_tf.text.FastBertTokenizer`), then the texts are packed
  as in training (`[CLS] a [SEP] b [SEP]`, the longer text truncated first).
  The classifier and regression types pad a request to its longest packed
  text, rounded up to a multiple of 8 as dynamic padding's batches
  (`data.dynamic_padding.padded_length`: a few shapes, not one per length;
  at most `max_seq_length`): the same outputs as padding to `max_seq_length` (padding
  is masked out of attention and these outputs are per example), with less
  work for short texts. Types with per-token or per-position outputs
  (`encoder`, `squad`, `pretraining`) pad to `max_seq_length`, so that their
  outputs keep the shape [batch, max_seq_length]. The vocabulary travels as an
  asset.

Outputs by model type: `encoder` -> `sequence_output`, `pooled_output`;
`classifier` -> `logits`, `probabilities`; `regression` (STS-B) ->
`predictions`; `squad` -> `start_logits`,
`end_logits`; `pretraining` -> `mlm_log_probs` [batch, P, vocab] at the given
`masked_lm_positions` and `nsp_log_probs` [batch, 2].

`--signatures` picks a subset (`SIGNATURES`, default all three). Only
`serve_text` carries TensorFlow Text ops: an export without it loads with
`tensorflow` alone (TF Serving builds and `saved_model_cli run` included);
with it, the loader must also import `tensorflow_text`.
"""

import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import file_io
from bert_tf.data import dynamic_padding
from bert_tf.modeling import BertClassifier
from bert_tf.modeling import BertModel
from bert_tf.modeling import BertPretrainer
from bert_tf.modeling import BertSquad
from bert_tf.modeling.regression import BertRegressor
from bert_tf.text import FastBertTokenizer
from bert_tf.text import FastSentencePieceTokenizer

# The outputs of every signature, by model type.
OUTPUTS = {
    "encoder": ("sequence_output", "pooled_output"),
    "classifier": ("logits", "probabilities"),
    "regression": ("predictions",),
    "squad": ("start_logits", "end_logits"),
    "pretraining": ("mlm_log_probs", "nsp_log_probs"),
}
MODEL_TYPES = tuple(OUTPUTS)

# The signatures an export can carry; `serve_text` needs the tokenizer.
SIGNATURES = ("serving_default", "serve_examples", "serve_text")

# Model types whose every output is per example: their `serve_text` pads a
# request to its longest text (positions past it change no output).
PER_EXAMPLE_TYPES = ("classifier", "regression")


def parse_signatures(names):
  """Parses and checks a `--signatures` value.

  Args:
    names: a comma-separated string or a sequence of signature names.

  Returns:
    A tuple of distinct names from `SIGNATURES`, in the order given.

  Raises:
    ValueError: naming an unknown or repeated signature, or an empty list.
  """
  if isinstance(names, str):
    names = [n.strip() for n in names.split(",") if n.strip()]
  names = tuple(names)
  unknown = [n for n in names if n not in SIGNATURES]
  if unknown or not names or len(set(names)) != len(names):
    raise ValueError("--signatures must be a comma-separated list of distinct "
                     "names from %s, found %r" % (", ".join(SIGNATURES),
                                                  ",".join(names)))
  return names


def build_model(config, model_type, num_labels=2):
  """Creates the Keras model of a model type (variables under original names).

  Args:
    config: `BertConfig`.
    model_type: one of `MODEL_TYPES`.
    num_labels: classes of the `classifier` type.

  Returns:
    A Keras model.

  Raises:
    ValueError: for an unknown model type.
  """
  if model_type == "encoder":
    return BertModel(config)
  if model_type == "classifier":
    return BertClassifier(config, num_labels)
  if model_type == "regression":
    return BertRegressor(config)
  if model_type == "squad":
    return BertSquad(config)
  if model_type == "pretraining":
    return BertPretrainer(config)
  raise ValueError("--model_type must be one of %s, found %r" %
                   (", ".join(MODEL_TYPES), model_type))


def truncated_pair_lengths(len_a, len_b, budget):
  """Lengths the original `truncate_seq_pair` leaves, computed for a batch.

  The original pops one token at a time from the longer text (from `b` on a
  tie) until the pair fits: the shorter text is kept whole when the longer
  can absorb the cut, else both end near half of the budget, `a` taking the
  odd token.

  Args:
    len_a: int Tensor [batch], lengths of the first texts.
    len_b: int Tensor [batch], lengths of the second texts.
    budget: int scalar, the most tokens both may keep together.

  Returns:
    (kept_a, kept_b): int Tensors [batch].
  """
  fits = len_a + len_b <= budget
  shorter = tf.minimum(len_a, len_b)
  keep_shorter = 2 * shorter <= budget
  half_up = (budget + 1) // 2
  half_down = budget // 2
  kept_a = tf.where(fits, len_a, tf.where(
      keep_shorter, tf.where(len_a <= len_b, len_a, budget - len_b), half_up))
  kept_b = tf.where(fits, len_b, tf.where(
      keep_shorter, tf.where(len_a <= len_b, budget - len_a, len_b),
      half_down))
  return kept_a, kept_b


def pack_ids(ids_a, ids_b, max_seq_length, cls_id, sep_id,
             pad_to_multiple=None):
  """Packs tokenized texts as training does, in the graph.

  Args:
    ids_a: int64 RaggedTensor [batch, (len_a)].
    ids_b: int64 RaggedTensor [batch, (len_b)]; an empty row means no text b.
    max_seq_length: the most tokens a packed text keeps (int).
    cls_id: id of "[CLS]".
    sep_id: id of "[SEP]".
    pad_to_multiple: None to pad every row to `max_seq_length`; an int to pad
      to the batch's longest packed row rounded up to a multiple of it (at
      most `max_seq_length`).

  Returns:
    dict of int32 Tensors [batch, length]: `input_ids`, `input_mask`,
    `segment_ids`; length is `max_seq_length`, or the padded longest row
    with `pad_to_multiple`.
  """
  len_a = ids_a.row_lengths()
  len_b = ids_b.row_lengths()
  has_b = len_b > 0
  single_a = tf.minimum(len_a, max_seq_length - 2)
  pair_a, pair_b = truncated_pair_lengths(len_a, len_b, max_seq_length - 3)
  kept_a = tf.where(has_b, pair_a, single_a)
  kept_b = tf.where(has_b, pair_b, tf.zeros_like(len_b))
  ids_a = tf.ragged.boolean_mask(
      ids_a, tf.ragged.range(len_a) < tf.expand_dims(kept_a, 1))
  ids_b = tf.ragged.boolean_mask(
      ids_b, tf.ragged.range(len_b) < tf.expand_dims(kept_b, 1))
  batch = tf.shape(len_a, out_type=tf.int64)[0]
  cls = tf.fill([batch, 1], tf.constant(cls_id, tf.int64))
  sep = tf.fill([batch, 1], tf.constant(sep_id, tf.int64))
  sep_b = tf.RaggedTensor.from_row_lengths(
      tf.fill([tf.reduce_sum(tf.cast(has_b, tf.int64))],
              tf.constant(sep_id, tf.int64)),
      tf.cast(has_b, tf.int64))
  input_ids = tf.concat([cls, ids_a, sep, ids_b, sep_b], axis=1)
  segment_ids = tf.concat(
      [tf.zeros_like(cls), tf.zeros_like(ids_a), tf.zeros_like(sep),
       tf.ones_like(ids_b), tf.ones_like(sep_b)], axis=1)
  if pad_to_multiple is None:
    shape = [None, max_seq_length]
  else:
    # (0 for an empty batch, where the maximum would be the least int64)
    longest = tf.maximum(tf.reduce_max(input_ids.row_lengths()), 0)
    shape = tf.stack([batch, dynamic_padding.padded_length(
        longest, max_seq_length, pad_to_multiple)])
  return {
      "input_ids": tf.cast(input_ids.to_tensor(0, shape=shape), tf.int32),
      "input_mask": tf.cast(tf.ones_like(input_ids).to_tensor(0, shape=shape),
                            tf.int32),
      "segment_ids": tf.cast(segment_ids.to_tensor(0, shape=shape), tf.int32),
  }


def _with_rank(inputs, rank):
  """Checks at run time that every input has `rank` (an error naming the input).

  A loaded SavedModel signature checks dtypes but not shapes, so the inputs
  are declared with unknown rank and checked here, before any op of the model:
  "Shape of tensor input_ids [3] is not compatible with expected shape [?,?]".

  Args:
    inputs: dict of name -> Tensor.
    rank: the expected rank.

  Returns:
    dict of name -> Tensor with static rank `rank`.
  """
  return {name: tf.ensure_shape(value, [None] * rank, name=name)
          for name, value in inputs.items()}


class ServingModule(tf.Module):
  """The exported object: the model, the tokenizer and the signatures."""

  def __init__(self, model, model_type, tokenizer, max_seq_length,
               max_predictions_per_seq=20, pad_text_to_longest=True):
    """Wraps a model for export.

    Args:
      model: the Keras model of `model_type` (weights loaded).
      model_type: one of `MODEL_TYPES`.
      tokenizer: `FastBertTokenizer` of the model's vocabulary, or
        `FastSentencePieceTokenizer` of its SentencePiece model (ALBERT); None
        for an export without `serve_text` (no TensorFlow Text ops).
      max_seq_length: padded length of `serve_examples`; the most tokens of
        a `serve_text` text (and its padded length but with
        `pad_text_to_longest`).
      max_predictions_per_seq: length of `masked_lm_positions` in
        `serve_examples` for the `pretraining` type.
      pad_text_to_longest: whether `serve_text` of a `PER_EXAMPLE_TYPES`
        model pads a request to its longest text (else to
        `max_seq_length`; other types always pad to `max_seq_length`).
    """
    super().__init__(name="bert_serving")
    # The export tracks the weights, not the Keras object: Keras models add
    # traced functions of their own to a SavedModel that would not trace here.
    # It tracks the tf.Variables inside the Keras variables (`.value`): with
    # the Keras wrappers tracked, TF1 loaders (saved_model_cli run, TF Serving)
    # restore one handle per variable and the functions read another.
    self.model_variables = [getattr(v, "value", v) for v in model.variables]
    self._run_model = lambda features: model(features, training=False)
    self.model_type = model_type
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self.max_predictions_per_seq = max_predictions_per_seq
    self.text_pad_multiple = (
        dynamic_padding.LENGTH_MULTIPLE
        if pad_text_to_longest and model_type in PER_EXAMPLE_TYPES else None)

  def _outputs(self, features):
    """Runs the model in inference mode and selects the signature outputs."""
    out = self._run_model(features)
    if self.model_type == "pretraining":
      positions = features["masked_lm_positions"]
      out = dict(out, mlm_log_probs=tf.reshape(
          out["mlm_log_probs"],
          [tf.shape(positions)[0], tf.shape(positions)[1], -1]))
    return {name: out[name] for name in OUTPUTS[self.model_type]}

  def signatures(self, names=SIGNATURES):
    """The concrete functions of the signatures `names`, for saving.

    Args:
      names: signature names from `SIGNATURES` (`serve_text` needs the
        tokenizer).

    Returns:
      dict: signature name -> concrete function.
    """
    # Declared with unknown rank so that `_with_rank` can check the rank.
    ids = tf.TensorSpec(None, tf.int32)
    strings = tf.TensorSpec(None, tf.string)
    # The pretraining heads read the masked positions in every signature.
    extra = ({"masked_lm_positions": ids}
             if self.model_type == "pretraining" else {})

    @tf.function
    def serve_ids(**features):
      return self._outputs(_with_rank(features, 2))

    @tf.function
    def serve_text(text_a, text_b, **features):
      texts = _with_rank({"text_a": text_a, "text_b": text_b}, 1)
      packed = self._pack_text(texts["text_a"], texts["text_b"])
      return self._outputs(dict(packed, **_with_rank(features, 2)))

    @tf.function
    def serve_examples(examples):
      examples = _with_rank({"examples": examples}, 1)["examples"]
      return self._outputs(self._parse_examples(examples))

    traced = {
        "serving_default": lambda: serve_ids.get_concrete_function(
            input_ids=ids, input_mask=ids, segment_ids=ids, **extra),
        "serve_text": lambda: serve_text.get_concrete_function(
            text_a=strings, text_b=strings, **extra),
        "serve_examples": lambda: serve_examples.get_concrete_function(
            examples=strings),
    }
    return {name: traced[name]() for name in names}

  def _pack_text(self, text_a, text_b):
    """Tokenizes and packs [batch] strings into model inputs."""
    return pack_ids(self.tokenizer.tokenize(text_a),
                    self.tokenizer.tokenize(text_b), self.max_seq_length,
                    self.tokenizer.cls_id, self.tokenizer.sep_id,
                    self.text_pad_multiple)

  def _parse_examples(self, serialized):
    """Parses serialized tf.Examples with the fine-tuning features."""
    seq = tf.io.FixedLenFeature([self.max_seq_length], tf.int64)
    spec = {"input_ids": seq, "input_mask": seq, "segment_ids": seq}
    if self.model_type == "pretraining":
      spec["masked_lm_positions"] = tf.io.FixedLenFeature(
          [self.max_predictions_per_seq], tf.int64)
    parsed = tf.io.parse_example(serialized, spec)
    return {name: tf.cast(t, tf.int32) for name, t in parsed.items()}


def check_export_dir(export_dir, overwrite=False):
  """Fails early when `export_dir` holds files and `overwrite` is False.

  Args:
    export_dir: the SavedModel directory to write.
    overwrite: whether replacing a non-empty directory is allowed.

  Raises:
    ValueError: naming the directory.
  """
  if (not overwrite and tf.io.gfile.exists(export_dir) and
      tf.io.gfile.listdir(export_dir)):
    raise ValueError("--export_dir %s is not empty; pass --overwrite to "
                     "replace it" % export_dir)


def export(config, init_checkpoint, vocab_file, do_lower_case, max_seq_length,
           model_type, export_dir, num_labels=2, overwrite=False,
           max_predictions_per_seq=20, model=None, spm_model_file=None,
           signatures=SIGNATURES, pad_text_to_longest=True):
  """Exports a checkpoint (or a model in memory) as a SavedModel.

  The SavedModel is written to a temporary directory beside `export_dir` and
  renamed when complete.

  Args:
    config: `BertConfig`.
    init_checkpoint: checkpoint prefix or directory to load, or None when
      `model` is given with its weights.
    vocab_file: the WordPiece vocabulary (copied into the export as an
      asset); unused with `spm_model_file`.
    do_lower_case: as for `FullTokenizer`.
    max_seq_length: padded length of `serve_examples`; the most tokens of a
      `serve_text` text.
    model_type: one of `MODEL_TYPES`.
    export_dir: output directory.
    num_labels: classes of the `classifier` type.
    overwrite: replace a non-empty `export_dir`.
    max_predictions_per_seq: masked positions per `serve_examples` record of
      the `pretraining` type.
    model: optional Keras model of `model_type` to export as it is.
    spm_model_file: a SentencePiece model (ALBERT): `serve_text` tokenizes as
      `FullTokenizer(None, do_lower_case, spm_model_file)`; the model file is
      the asset.
    signatures: the signatures to export (see `parse_signatures`); without
      `serve_text` neither a vocabulary nor TensorFlow Text ops are needed.
    pad_text_to_longest: whether `serve_text` of a classifier or regression
      model pads a request to its longest text rather than to
      `max_seq_length` (the same outputs; see the module docstring).

  Returns:
    `export_dir`.

  Raises:
    ValueError: on an unknown model type or signature, a too long
      `max_seq_length`, a missing vocabulary for `serve_text`, or a
      non-empty `export_dir` without `overwrite`.
  """
  signatures = parse_signatures(signatures)
  if model_type not in MODEL_TYPES:
    raise ValueError("--model_type must be one of %s, found %r" %
                     (", ".join(MODEL_TYPES), model_type))
  config.check_max_seq_length(max_seq_length)
  check_export_dir(export_dir, overwrite)
  if model is None:
    model = build_model(config, model_type, num_labels)
    checkpoints.load_checkpoint(model, init_checkpoint)
  tokenizer = None
  if "serve_text" in signatures and spm_model_file:
    tokenizer = FastSentencePieceTokenizer(spm_model_file, do_lower_case)
  elif "serve_text" in signatures and vocab_file:
    tokenizer = FastBertTokenizer(vocab_file, do_lower_case)
  elif "serve_text" in signatures:
    raise ValueError("--vocab_file or --spm_model_file is required for the "
                     "raw-text signature serve_text (or leave it out of "
                     "--signatures)")
  if tokenizer is not None:
    config.check_vocab_size(tokenizer.vocab_size,
                            spm_model_file or vocab_file)
  module = ServingModule(model, model_type, tokenizer, max_seq_length,
                         max_predictions_per_seq, pad_text_to_longest)
  # `check_export_dir` has refused a non-empty directory without overwrite.
  with file_io.atomic_directory(export_dir, overwrite=True) as temp_dir:
    tf.saved_model.save(module, temp_dir,
                        signatures=module.signatures(signatures))
  return export_dir
