"""Reading fine-tuning TFRecords (classifier, SQuAD) as the original input_fn.

The records are written by `glue` and `squad` (`tf.train.Example`s of their
own features); `finetuning_dataset` reads them back with a task's parsing
spec, repeated and shuffled for training as the original `input_fn_builder`s,
in batches padded to the records' length, or with dynamic padding
(`dynamic_padding.batch_by_length`) in batches of similar lengths cut to
their longest example.
"""

import tensorflow as tf

from bert_tf.data import dynamic_padding as dynamic_padding_lib
from bert_tf.data import record_format


def finetuning_dataset(input_file, name_to_features, batch_size, is_training,
                       drop_remainder, input_context=None, seed=None,
                       dynamic_padding=False):
  """Reads fine-tuning TFRecords (classifier, SQuAD) as the original input_fn.

  Args:
    input_file: TFRecord path.
    name_to_features: the parsing spec of one record (with `input_mask`).
    batch_size: batch size of this dataset (per replica under a strategy).
    is_training: repeat and shuffle (buffer 100, as the original).
    drop_remainder: drop a last partial batch.
    input_context: `tf.distribute.InputContext` to shard the file by input
      pipeline (multi-worker), or None.
    seed: shuffle seed, or None.
    dynamic_padding: batch examples of similar lengths and cut each batch to
      its longest (`dynamic_padding.batch_by_length`; for training the
      batches of a window are shuffled with `seed`), each example with its
      record number as `example_index`.

  Returns:
    A `tf.data.Dataset` of dicts of batched features (int64 cast to int32;
    `example_index` int64): sequence features [batch, seq_length], or with
    dynamic padding [batch, length <= seq_length].
  """
  d = tf.data.TFRecordDataset(input_file)
  if dynamic_padding:
    d = d.enumerate()  # record numbers, before any sharding or shuffling
  if input_context is not None and input_context.num_input_pipelines > 1:
    d = d.shard(input_context.num_input_pipelines,
                input_context.input_pipeline_id)
  if is_training:
    d = d.repeat()
    d = d.shuffle(buffer_size=100, seed=seed)

  def decode(*element):
    """(record) or, with dynamic padding, (record number, record)."""
    features = record_format.decode_record(element[-1], name_to_features)
    if dynamic_padding:
      features[dynamic_padding_lib.EXAMPLE_INDEX] = element[0]
    return features

  d = d.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if not dynamic_padding:
    return d.batch(batch_size, drop_remainder=drop_remainder)
  seq_length = name_to_features["input_mask"].shape[0]
  return dynamic_padding_lib.batch_by_length(
      d, batch_size, seq_length, drop_remainder, shuffle=is_training,
      seed=seed)
