"""Reading fine-tuning TFRecords (classifier, SQuAD) as the original input_fn.

The records are written by `glue` and `squad` (`tf.train.Example`s of their
own features); `finetuning_dataset` reads them back with a task's parsing
spec, repeated and shuffled for training as the original `input_fn_builder`s.
"""

import tensorflow as tf

from bert_tf.data import record_format


def finetuning_dataset(input_file, name_to_features, batch_size, is_training,
                       drop_remainder, input_context=None, seed=None):
  """Reads fine-tuning TFRecords (classifier, SQuAD) as the original input_fn.

  Args:
    input_file: TFRecord path.
    name_to_features: the parsing spec of one record.
    batch_size: batch size of this dataset (per replica under a strategy).
    is_training: repeat and shuffle (buffer 100, as the original).
    drop_remainder: drop a last partial batch.
    input_context: `tf.distribute.InputContext` to shard the file by input
      pipeline (multi-worker), or None.
    seed: shuffle seed, or None.

  Returns:
    A `tf.data.Dataset` of dicts of batched features (int64 cast to int32).
  """
  d = tf.data.TFRecordDataset(input_file)
  if input_context is not None and input_context.num_input_pipelines > 1:
    d = d.shard(input_context.num_input_pipelines,
                input_context.input_pipeline_id)
  if is_training:
    d = d.repeat()
    d = d.shuffle(buffer_size=100, seed=seed)
  d = d.map(
      lambda record: record_format.decode_record(record, name_to_features),
      num_parallel_calls=tf.data.AUTOTUNE)
  return d.batch(batch_size, drop_remainder=drop_remainder)
