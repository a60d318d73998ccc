"""Pretraining instances built and masked in batches of ids with NumPy.

The faithful path (`instances.create_instances_from_document`) masks one
instance at a time on token strings, as the original. The parallel mode,
whose stream differs from the original's anyway, makes the segments of its
instances the same way (`instances.instance_segments`, on token ids instead
of strings) and then builds and masks a whole batch of them at once on id
matrices, with the same distributions:

* the instance `[CLS] A [SEP] B [SEP]` (or `[CLS] A [SEP]`), its segment ids
  and label, as matrices (`InstanceBatcher.make_batch`);
* the candidates: the positions of the tokens other than `[CLS]` and
  `[SEP]`, and how many of them to mask (`masking.num_predictions`);
* the selection of the masking strategy (`MaskingStrategy.select_batch`):
  strategies whose groups are shuffled and taken greedily (token, whole word)
  select all rows at once (`batch_selection.select_whole_groups`); the
  others select row by row on the row's tokens
  (`MaskingStrategy.select_rows`);
* the 80/10/10 replacement, per token or once per group, and the features
  of the records (`record_encoder.PretrainingBatch`).
"""

import itertools

import numpy as np

from bert_tf.data import record_encoder
from bert_tf.data.pretraining import batch_selection


class InstanceBatcher(object):
  """Builds and masks batches of instances from their segments, as ids."""

  def __init__(self, options, vocab):
    """Prepares the vocabulary tables.

    Args:
      options: `instances.InstanceOptions`.
      vocab: dict from token to id (`FullTokenizer.vocab`); its keys, in
        order, are the words a random replacement picks from, as the
        original's `vocab_words`.
    """
    self.options = options
    vocab_words = list(vocab)
    self.cls_id, self.sep_id, self.mask_id = (
        vocab[token] for token in ("[CLS]", "[SEP]", "[MASK]"))
    # The id of each word a random replacement draws.
    self._replacement_ids = np.array([vocab[w] for w in vocab_words],
                                     np.int64)
    words = [None] * (max(vocab.values()) + 1)
    for word, index in vocab.items():
      words[index] = word
    self.words = words
    masking = options.masking
    self._word_start = np.array(
        [w is not None and masking.is_word_start(w) for w in words], bool)

  def make_batch(self, segments, rng):
    """Makes the masked instances of a list of segments.

    Args:
      segments: list of (ids_a, ids_b, label) from `instance_segments` on
        documents of ids: lists of ints, `ids_b` None for a one-segment
        task, the bool label None for a task without one.
      rng: a `NumpyInstanceRandom` (its `generator` draws the batch's
        selections and replacements).

    Returns:
      A `record_encoder.PretrainingBatch`.
    """
    options = self.options
    generator = rng.generator
    two_segments = segments[0][1] is not None
    cls, sep = [self.cls_id], [self.sep_id]
    num_a = np.fromiter((len(a) for a, _, _ in segments), np.int64,
                        len(segments))
    if two_segments:
      num_tokens = num_a + 3 + np.fromiter(
          (len(b) for _, b, _ in segments), np.int64, len(segments))
      pieces = ((cls, a, sep, b, sep) for a, b, _ in segments)
    else:
      num_tokens = num_a + 2
      pieces = ((cls, a, sep) for a, _, _ in segments)
    positions = np.arange(options.max_seq_length)
    in_seq = positions < num_tokens[:, None]
    ids = np.zeros(in_seq.shape, np.int64)
    ids[in_seq] = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(pieces)),
        np.int64, int(num_tokens.sum()))
    segment_ids = (in_seq & (positions > num_a[:, None] + 1)).astype(np.int64)
    candidates = in_seq & (ids != self.cls_id) & (ids != self.sep_id)
    tokens = batch_selection.TokenMatrix(ids, num_tokens, candidates,
                                         self.words, self._word_start)
    # As `masking.num_predictions` (round half to even).
    num_to_predict = np.minimum(
        options.max_predictions_per_seq,
        np.maximum(1, np.round(num_tokens * options.masked_lm_prob)).astype(
            np.int64))
    masking = options.masking
    group_first = masking.select_batch(tokens, num_to_predict, rng)
    selected = group_first >= 0
    # The masked positions, increasing, row by row.
    rows_of, masked = np.nonzero(selected)
    num_predictions = selected.sum(axis=1)
    # 80% [MASK], 10% the token kept, 10% a random word: drawn per token, or
    # at the group's first position for the whole group.
    decision = generator.random(len(masked))
    if masking.decide_per_group:
      by_position = np.zeros(ids.shape)
      by_position[rows_of, masked] = decision
      decision = by_position[rows_of, group_first[rows_of, masked]]
    random_words = self._replacement_ids[generator.integers(
        0, len(self._replacement_ids), len(masked))]
    input_ids = ids.copy()
    input_ids[rows_of, masked] = np.where(
        decision < 0.8, self.mask_id,
        np.where(decision >= 0.9, random_words, ids[rows_of, masked]))
    width = options.max_predictions_per_seq
    in_pred = np.arange(width) < num_predictions[:, None]

    def per_prediction(values):
      matrix = np.zeros((len(segments), width), np.int64)
      matrix[in_pred] = values
      return matrix

    batch = record_encoder.PretrainingBatch(
        input_ids=input_ids, num_tokens=num_tokens, segment_ids=segment_ids,
        masked_lm_positions=per_prediction(masked),
        masked_lm_ids=per_prediction(ids[rows_of, masked]),
        num_predictions=num_predictions)
    if segments[0][2] is not None:
      batch.next_sentence_labels = np.array(
          [int(label) for _, _, label in segments], np.int64)
    if masking.span_boundary_features:
      first = group_first[rows_of, masked]
      last = np.full(ids.shape, -1, np.int64)
      np.maximum.at(last, (rows_of, first), masked)
      batch.masked_lm_span_left = per_prediction(first - 1)
      batch.masked_lm_span_right = per_prediction(last[rows_of, first] + 1)
      batch.masked_lm_span_offset = per_prediction(masked - first)
    return batch
