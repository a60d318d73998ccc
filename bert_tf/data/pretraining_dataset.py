"""The tf.data input pipeline of pretraining, over TFRecord globs.

Training (`is_training=True`), per input pipeline of a `tf.distribute`
strategy:

  files (glob order) -> shard by input pipeline -> shuffle files ->
  parallel interleave of TFRecordDatasets -> shuffle 100 records -> repeat ->
  [skip the records of the steps already trained] -> decode (int64 -> int32)
  [-> dynamic masking] -> batch(per-replica batch, drop_remainder) -> prefetch

Files are sharded between input pipelines (`tf.distribute.InputContext`) when
there are at least as many files as pipelines, else records are. Unlike the
original, which repeated before shuffling, every pass over the data is
shuffled on its own and then repeated, so that a data set of exactly one batch
yields that same set of records in every batch; with a `seed` the order is
deterministic, which (with `start_step`) lets a resumed run read what an
uninterrupted run would have read.

Evaluation reads the files in order without shuffling and repeats, as the
original (a fixed number of steps is evaluated).

Dynamic masking (RoBERTa-style, `DynamicMasking`): any pretraining record can
be read with it. The stored prediction positions whose `masked_lm_weights` are
non-zero are first undone (their `masked_lm_ids` are written back into
`input_ids`), so records written without masks (all weights 0) and records of
the original create_pretraining_data.py both work. Then new positions are
drawn every time the record is read, with the original rule: min(max
predictions, max(1, round(num_tokens * masked_lm_prob))) positions among the
real tokens other than [CLS] and [SEP], each replaced by [MASK] (80%), kept
(10%) or a random vocabulary id (10%).
"""

import dataclasses
import random

import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import dynamic_padding as dynamic_padding_lib
from bert_tf.data import record_format

# Records read at once from each file, and the record shuffle buffer, as the
# original input_fn (num_cpu_threads=4, buffer_size=100).
CYCLE_LENGTH = 4
SHUFFLE_BUFFER = 100

# The flag that sets each feature's length, for error messages.
_LENGTH_FLAGS = dict(
    [(name, " (--max_seq_length)")
     for name in ("input_ids", "input_mask", "segment_ids")] +
    [(name, " (--max_predictions_per_seq)")
     for name in ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
     + record_format.SPAN_BOUNDARY_FEATURE_NAMES])


def expand_input_patterns(input_file):
  """Expands comma-separated TFRecord paths / glob patterns into files.

  Args:
    input_file: a string of comma-separated patterns, or a list of patterns.

  Returns:
    The list of files, pattern by pattern, each pattern's matches sorted.

  Raises:
    ValueError: if no pattern is given or a pattern matches no file.
  """
  patterns = (input_file.split(",") if isinstance(input_file, str)
              else list(input_file or ()))
  patterns = [p.strip() for p in patterns if p.strip()]
  if not patterns:
    raise ValueError("--input_file is empty: expected TFRecord files or glob "
                     "patterns, separated by commas")
  files = []
  for pattern in patterns:
    matches = sorted(tf.io.gfile.glob(pattern))
    if not matches:
      raise ValueError("--input_file pattern %r matches no file" % pattern)
    files.extend(matches)
  return files


def _first_record_features(path):
  """Returns the feature map of the first record of `path`."""
  first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
  if first is None:
    raise ValueError("TFRecord file %s holds no record" % path)
  return tf.train.Example.FromString(first.numpy()).features.feature


def detect_tasks(input_files):
  """Tells from the records' features which objectives they carry.

  `next_sentence_labels` means a next sentence task (the original records;
  `--sentence_task=none` writes none); the `masked_lm_span_*` features mean
  the span boundary objective (`--masking=span`). The first record of every
  file is read.

  Args:
    input_files: list of TFRecord files.

  Returns:
    The `record_format.PretrainingTasks` of the records.

  Raises:
    ValueError: for an empty file, for a file with only some of the span
      features, or for files that carry different tasks (naming two of them).
  """
  first = None  # (path, tasks) of the first file
  span_names = record_format.SPAN_BOUNDARY_FEATURE_NAMES
  for path in input_files:
    names = set(_first_record_features(path))
    span = [n for n in span_names if n in names]
    if span and len(span) != len(span_names):
      raise ValueError(
          "Record of %s has %s but not all of %s (records of --masking=span "
          "have the three)" % (path, ", ".join(span), ", ".join(span_names)))
    tasks = record_format.PretrainingTasks(
        next_sentence="next_sentence_labels" in names,
        span_boundary=bool(span))
    if first is None:
      first = (path, tasks)
    elif first[1] != tasks:
      raise ValueError(
          "Input files carry different pretraining tasks: %s has %s, %s has "
          "%s; train on records of one kind" %
          (first[0], first[1].describe(), path, tasks.describe()))
  return first[1]


def check_record_lengths(input_files, max_seq_length, max_predictions_per_seq,
                         tasks=None):
  """Checks the first record of every file against the expected lengths.

  Args:
    input_files: list of TFRecord files.
    max_seq_length: expected length of input_ids, input_mask, segment_ids.
    max_predictions_per_seq: expected length of the masked_lm_* features.
    tasks: the `record_format.PretrainingTasks` whose features are expected
      (default the original ones).

  Raises:
    ValueError: naming the file, the feature, the expected and the found
      length, for an empty file, a missing feature or a length mismatch.
  """
  spec = record_format.pretraining_feature_spec(max_seq_length,
                                            max_predictions_per_seq, tasks)
  for path in input_files:
    features = _first_record_features(path)
    for name, feature_spec in spec.items():
      if name not in features:
        raise ValueError("Record of %s lacks the feature %r (a pretraining "
                         "record has %s)" %
                         (path, name, ", ".join(spec)))
      found = len(record_format.feature_values(features[name]))
      expected = feature_spec.shape[0]
      if found != expected:
        raise ValueError(
            "Record of %s: feature %r has length %d, expected %d%s" %
            (path, name, found, expected, _LENGTH_FLAGS.get(name, "")))


@dataclasses.dataclass(frozen=True)
class DynamicMasking:
  """What dynamic masking needs to know about the vocabulary.

  Attributes:
    mask_id: id of [MASK].
    cls_id: id of [CLS] (never masked).
    sep_id: id of [SEP] (never masked).
    vocab_size: random replacements are drawn from [0, vocab_size).
    masked_lm_prob: fraction of the tokens to mask (0.15 as the original).
  """
  mask_id: int
  cls_id: int
  sep_id: int
  vocab_size: int
  masked_lm_prob: float = 0.15

  @classmethod
  def from_vocab_file(cls, vocab_file, masked_lm_prob=0.15):
    """Reads the special ids from a vocabulary (one token a line).

    Raises:
      ValueError: if the vocabulary lacks [MASK], [CLS] or [SEP].
    """
    with tf.io.gfile.GFile(vocab_file) as f:
      tokens = [line.rstrip("\n").strip() for line in f]
    ids = {}
    for token in ("[MASK]", "[CLS]", "[SEP]"):
      if token not in tokens:
        raise ValueError("Vocabulary %s has no %s token, which dynamic "
                         "masking needs" % (vocab_file, token))
      ids[token] = tokens.index(token)
    return cls(ids["[MASK]"], ids["[CLS]"], ids["[SEP]"], len(tokens),
               masked_lm_prob)

  @classmethod
  def from_spm_model_file(cls, spm_model_file, masked_lm_prob=0.15):
    """Reads the special ids from a SentencePiece model (ALBERT).

    Raises:
      ValueError: if the model is not one or lacks [MASK], [CLS] or [SEP].
    """
    vocab = tokenization.SentencePieceVocab(
        tokenization.load_sentencepiece_model(spm_model_file))
    for token in ("[MASK]", "[CLS]", "[SEP]"):
      if token not in vocab:
        raise ValueError("SentencePiece model %s has no %s piece, which "
                         "dynamic masking needs" % (spm_model_file, token))
    return cls(vocab["[MASK]"], vocab["[CLS]"], vocab["[SEP]"], len(vocab),
               masked_lm_prob)

  def __call__(self, index, features, seed):
    """Re-masks one decoded record.

    Args:
      index: int64 scalar, the record's position in the stream (with `seed`,
        it keys the stateless random draws, so masks are reproducible).
      features: dict of one record's int32/float32 features.
      seed: int, the pipeline seed.

    Returns:
      `features` with new `input_ids`, `masked_lm_positions`, `masked_lm_ids`
      and `masked_lm_weights`.
    """
    input_ids = features["input_ids"]  # [S]
    max_predictions = features["masked_lm_positions"].shape[0]
    seq_length = input_ids.shape[0]
    # Undo the stored masks.
    stored = features["masked_lm_weights"] > 0
    input_ids = tf.tensor_scatter_nd_update(
        input_ids,
        tf.boolean_mask(features["masked_lm_positions"], stored)[:, None],
        tf.boolean_mask(features["masked_lm_ids"], stored))
    real = features["input_mask"] > 0
    candidate = real & (input_ids != self.cls_id) & (input_ids != self.sep_id)
    num_tokens = tf.reduce_sum(tf.cast(real, tf.float32))
    num_to_predict = tf.minimum(
        max_predictions,
        tf.maximum(1, tf.cast(tf.round(num_tokens * self.masked_lm_prob),
                              tf.int32)))
    num_to_predict = tf.minimum(
        num_to_predict, tf.reduce_sum(tf.cast(candidate, tf.int32)))
    seeds = tf.random.experimental.stateless_split(
        tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)]), 4)
    # A random subset of the candidates: the top scores, in position order.
    scores = tf.where(candidate,
                      tf.random.stateless_uniform([seq_length], seeds[0]),
                      -1.0)
    chosen = tf.math.top_k(scores, k=max_predictions).indices
    chosen = tf.sort(chosen[:num_to_predict])  # [n]
    labels = tf.gather(input_ids, chosen)
    n = tf.shape(chosen)[:1]
    to_mask = tf.random.stateless_uniform(n, seeds[1]) < 0.8
    keep = tf.random.stateless_uniform(n, seeds[2]) < 0.5
    random_ids = tf.random.stateless_uniform(
        n, seeds[3], minval=0, maxval=self.vocab_size, dtype=tf.int32)
    replacement = tf.where(to_mask, self.mask_id,
                           tf.where(keep, labels, random_ids))
    pad = [[0, max_predictions - num_to_predict]]
    features = dict(features)
    features["input_ids"] = tf.tensor_scatter_nd_update(
        input_ids, chosen[:, None], replacement)
    features["masked_lm_positions"] = tf.ensure_shape(
        tf.pad(chosen, pad), [max_predictions])
    features["masked_lm_ids"] = tf.ensure_shape(tf.pad(labels, pad),
                                                [max_predictions])
    features["masked_lm_weights"] = tf.ensure_shape(
        tf.pad(tf.ones(n, tf.float32), pad), [max_predictions])
    return features


def pretraining_dataset(input_files, max_seq_length, max_predictions_per_seq,
                        global_batch_size, is_training, input_context=None,
                        seed=None, start_step=0, dynamic_masking=None,
                        tasks=None, dynamic_padding=False):
  """Builds the dataset of one input pipeline.

  Args:
    input_files: list of TFRecord files (see `expand_input_patterns`).
    max_seq_length: length of the sequence features.
    max_predictions_per_seq: length of the masked_lm_* features.
    global_batch_size: batch size over all replicas; each replica gets
      global_batch_size / num_replicas_in_sync.
    is_training: shuffle and repeat (True), or read in order (False).
    input_context: a `tf.distribute.InputContext` (None: one pipeline, one
      replica).
    seed: seed of the shuffles and of dynamic masking (None: random).
    start_step: training steps already done; their records are skipped so
      that a resumed run continues where the interrupted one stopped.
    dynamic_masking: a `DynamicMasking`, or None to use the stored masks.
    tasks: the records' `record_format.PretrainingTasks` (see `detect_tasks`);
      default the original's.
    dynamic_padding: cut each batch, kept in order, to its longest example
      (never before a masked LM position; `dynamic_padding.cut_batch`).

  Returns:
    A `tf.data.Dataset` of dicts of per-replica batches: int32
    [batch, max_seq_length] / [batch, max_predictions_per_seq] /
    next_sentence_labels [batch, 1], float32 masked_lm_weights; the
    `masked_lm_span_*` [batch, max_predictions_per_seq] with span boundaries.
    With dynamic padding the sequence features are [batch, <= max_seq_length].

  Raises:
    ValueError: if the global batch does not divide among the replicas, or
      dynamic masking is asked for on records with span boundaries.
  """
  if dynamic_masking is not None and tasks is not None and (
      tasks.span_boundary):
    raise ValueError("--dynamic_masking draws single tokens and cannot keep "
                     "the span boundaries (masked_lm_span_*) of --masking=span "
                     "records")
  context = input_context or tf.distribute.InputContext()
  if global_batch_size % context.num_replicas_in_sync:
    raise ValueError("The global batch size %d is not divisible by the %d "
                     "replicas" % (global_batch_size,
                                   context.num_replicas_in_sync))
  batch_size = context.get_per_replica_batch_size(global_batch_size)
  spec = record_format.pretraining_feature_spec(max_seq_length,
                                            max_predictions_per_seq, tasks)
  num_pipelines = context.num_input_pipelines
  pipeline_id = context.input_pipeline_id
  shard_files = len(input_files) >= num_pipelines

  if is_training:
    files = tf.data.Dataset.from_tensor_slices(list(input_files))
    if shard_files:
      files = files.shard(num_pipelines, pipeline_id)
    files = files.shuffle(len(input_files), seed=seed)
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(CYCLE_LENGTH, len(input_files)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not shard_files:
      records = records.shard(num_pipelines, pipeline_id)
    records = records.shuffle(SHUFFLE_BUFFER, seed=seed).repeat()
    # Records this pipeline fed to the steps already trained.
    records_per_step = batch_size * (context.num_replicas_in_sync //
                                     num_pipelines)
    records = records.enumerate().skip(start_step * records_per_step)
  else:
    records = tf.data.TFRecordDataset(list(input_files))
    if num_pipelines > 1:
      records = records.shard(num_pipelines, pipeline_id)
    records = records.repeat().enumerate()

  mask_seed = random.randrange(2**31) if seed is None else seed

  def decode(index, record):
    features = record_format.decode_record(record, spec)
    if dynamic_masking is not None:
      features = dynamic_masking(index, features, mask_seed)
    return features

  dataset = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  dataset = dataset.batch(batch_size, drop_remainder=True)
  if dynamic_padding:
    dataset = dataset.map(
        lambda features: dynamic_padding_lib.cut_batch(features,
                                                       max_seq_length),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)
