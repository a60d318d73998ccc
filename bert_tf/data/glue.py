"""GLUE / XNLI sentence (pair) classification data, as run_classifier.py.

- Processors read the task's TSV files into `InputExample`s. `xnli` (zh),
  `mnli`, `mrpc` and `cola` read exactly the files, columns, headers, labels
  and guids of the original; `sst-2`, `qqp`, `qnli`, `rte`, `wnli` and `sts-b`
  (a regression task: one float label) read the public GLUE layout the same
  way. `get_processor` looks a task up case-insensitively.
- `convert_single_example` packs one example into `InputFeatures`;
  `file_based_convert_examples_to_features` writes the original fine-tuning
  TFRecords (`input_ids`, `input_mask`, `segment_ids` [max_seq_length],
  `label_ids` [1], `is_real_example` [1]); `file_based_dataset` reads them.
- `pad_examples` appends `PaddingInputExample`s up to a batch multiple, as the
  original did for eval and predict on TPU (they get `is_real_example` 0).
"""

import collections
import csv

from absl import logging
import tensorflow as tf

from bert_tf import file_io
from bert_tf import tokenization
from bert_tf.data import finetuning_dataset
from bert_tf.data import record_format
from bert_tf.data.sentence_pairs import pack_tokens


class InputExample(object):
  """One example: one or two untokenized texts and an optional label."""

  def __init__(self, guid, text_a, text_b=None, label=None):
    """Constructs an `InputExample`.

    Args:
      guid: unique id, e.g. "train-1".
      text_a: the (first) text.
      text_b: the second text of a pair task, or None.
      label: the label string (a float for regression tasks), or None.
    """
    self.guid = guid
    self.text_a = text_a
    self.text_b = text_b
    self.label = label

  def __repr__(self):
    return "InputExample(guid=%r, text_a=%r, text_b=%r, label=%r)" % (
        self.guid, self.text_a, self.text_b, self.label)


class PaddingInputExample(object):
  """A fake example that pads eval/predict sets to a multiple of the batch size.

  Its features are all zeros with `is_real_example` 0, so metrics ignore it
  and its prediction is not written.
  """


InputFeatures = collections.namedtuple(
    "InputFeatures",
    ["input_ids", "input_mask", "segment_ids", "label_id", "is_real_example"])


class DataProcessor(object):
  """Base class of the task readers.

  Attributes:
    is_regression: True when the label is a float (STS-B).
  """

  is_regression = False

  def get_train_examples(self, data_dir):
    """Returns the `InputExample`s of the training set in `data_dir`."""
    raise NotImplementedError()

  def get_dev_examples(self, data_dir):
    """Returns the `InputExample`s of the dev set in `data_dir`."""
    raise NotImplementedError()

  def get_test_examples(self, data_dir):
    """Returns the `InputExample`s of the test set (placeholder labels)."""
    raise NotImplementedError(
        "%s has no test set; --do_predict is not available for this task" %
        type(self).__name__)

  def get_labels(self):
    """Returns the list of labels; the label id is the index in it."""
    raise NotImplementedError()

  @classmethod
  def _read_tsv(cls, input_file, quotechar=None):
    """Reads a tab separated file without quoting, as the original.

    Args:
      input_file: path of the file.
      quotechar: csv quote character (None: quotes are plain characters).

    Returns:
      A `TsvRows`: the list of rows (lists of strings) and the file name.

    Raises:
      ValueError: if the file does not exist.
    """
    if not tf.io.gfile.exists(input_file):
      raise ValueError("Data file not found: %s" % input_file)
    with tf.io.gfile.GFile(input_file, "r") as f:
      reader = csv.reader(f, delimiter="\t", quotechar=quotechar)
      return TsvRows(input_file, list(reader))


class TsvRows(object):
  """Rows of a TSV file, whose `column` access names the file and line."""

  def __init__(self, path, rows):
    """Keeps the rows.

    Args:
      path: the file the rows were read from.
      rows: list of rows, each a list of column strings.
    """
    self.path = path
    self.rows = rows

  def __iter__(self):
    """Yields (row number, row) pairs, row 0 being the first line."""
    return iter(enumerate(self.rows))

  def column(self, i, index):
    """The unicode text of column `index` of row `i` (0-based).

    Args:
      i: row number (0 is the file's first line).
      index: column index; negative counts from the end.

    Returns:
      The column's text.

    Raises:
      ValueError: naming the file and 1-based line when the row is too short.
    """
    row = self.rows[i]
    needed = index + 1 if index >= 0 else -index
    if len(row) < needed:
      raise ValueError(
          "%s, line %d: expected at least %d tab-separated columns, found %d: "
          "%r" % (self.path, i + 1, needed, len(row), "\t".join(row)))
    return tokenization.convert_to_unicode(row[index])


class XnliProcessor(DataProcessor):
  """XNLI (Chinese): MultiNLI machine-translated train, XNLI dev/test."""

  def __init__(self, language="zh"):
    self.language = language

  def get_train_examples(self, data_dir):
    """`multinli/multinli.train.<lang>.tsv`: premise, hypo, label."""
    lines = self._read_tsv(
        "%s/multinli/multinli.train.%s.tsv" % (data_dir, self.language))
    examples = []
    for i, _ in lines:
      if i == 0:
        continue
      label = lines.column(i, 2)
      if label == "contradictory":
        label = "contradiction"
      examples.append(InputExample("train-%d" % i, lines.column(i, 0),
                                   lines.column(i, 1), label))
    return examples

  def get_dev_examples(self, data_dir):
    """`xnli.dev.tsv`, the rows of `self.language`."""
    return self._xnli_examples("%s/xnli.dev.tsv" % data_dir, "dev")

  def get_test_examples(self, data_dir):
    """`xnli.test.tsv` (same layout as dev; an addition to the original)."""
    return self._xnli_examples("%s/xnli.test.tsv" % data_dir, "test")

  def _xnli_examples(self, path, set_type):
    lines = self._read_tsv(path)
    examples = []
    for i, _ in lines:
      if i == 0:
        continue
      if lines.column(i, 0) != self.language:
        continue
      examples.append(InputExample("%s-%d" % (set_type, i),
                                   lines.column(i, 6), lines.column(i, 7),
                                   lines.column(i, 1)))
    return examples

  def get_labels(self):
    return ["contradiction", "entailment", "neutral"]


class GlueProcessor(DataProcessor):
  """A GLUE task: `train.tsv`, a dev and a test file, one header line each.

  Subclasses set the class attributes:
    dev_file, test_file: file names in the data directory.
    labels: the label list.
    text_a, text_b, label: column indexes of the train/dev files (text_b
      None for single-sentence tasks).
    test_text_a, test_text_b: column indexes of the test file.
    guid_column: column giving the guid's number, or None for the row number.
    test_guid_set: the set name of test guids.
  """

  dev_file = "dev.tsv"
  test_file = "test.tsv"
  dev_set = "dev"
  test_guid_set = "test"
  labels = ("0", "1")
  text_b = None
  test_text_b = None
  guid_column = None
  skip_header = True

  def get_train_examples(self, data_dir):
    return self._create_examples(
        self._read_tsv("%s/train.tsv" % data_dir), "train")

  def get_dev_examples(self, data_dir):
    return self._create_examples(
        self._read_tsv("%s/%s" % (data_dir, self.dev_file)), self.dev_set)

  def get_test_examples(self, data_dir):
    return self._create_examples(
        self._read_tsv("%s/%s" % (data_dir, self.test_file)),
        self.test_guid_set, is_test=True)

  def get_labels(self):
    return list(self.labels)

  def _create_examples(self, lines, set_type, is_test=False):
    """Turns the rows of one file into examples.

    Args:
      lines: `TsvRows`.
      set_type: the guid prefix ("train", "dev", "test", ...).
      is_test: whether the file is a test file (other columns, and the
        first label as placeholder).

    Returns:
      list of `InputExample`.
    """
    text_a = self.test_text_a if is_test else self.text_a
    text_b = self.test_text_b if is_test else self.text_b
    examples = []
    for i, _ in lines:
      if i == 0 and (self.skip_header or is_test):
        continue
      number = lines.column(i, self.guid_column) if (
          self.guid_column is not None) else i
      if is_test:
        label = 0.0 if self.is_regression else self.labels[0]
      else:
        label = lines.column(i, self.label)
        if self.is_regression:
          label = _parse_float(label, lines.path, i)
      examples.append(InputExample(
          "%s-%s" % (set_type, number), lines.column(i, text_a),
          lines.column(i, text_b) if text_b is not None else None, label))
    return examples


def _parse_float(text, path, i):
  try:
    return float(text)
  except ValueError:
    raise ValueError("%s, line %d: expected a float label, found %r" %
                     (path, i + 1, text))


class MnliProcessor(GlueProcessor):
  """MultiNLI (GLUE): sentence1/sentence2 in columns 8/9, gold label last."""
  dev_file = "dev_matched.tsv"
  dev_set = "dev_matched"
  test_file = "test_matched.tsv"
  labels = ("contradiction", "entailment", "neutral")
  text_a, text_b, label = 8, 9, -1
  test_text_a, test_text_b = 8, 9
  guid_column = 0


class MrpcProcessor(GlueProcessor):
  """MRPC (GLUE): quality, #1 ID, #2 ID, #1 String, #2 String."""
  text_a, text_b, label = 3, 4, 0
  test_text_a, test_text_b = 3, 4


class ColaProcessor(GlueProcessor):
  """CoLA (GLUE): train/dev have no header (source, label, mark, sentence)."""
  skip_header = False
  text_a, label = 3, 1
  test_text_a = 1


class Sst2Processor(GlueProcessor):
  """SST-2 (GLUE): sentence, label; test: index, sentence."""
  text_a, label = 0, 1
  test_text_a = 1


class QqpProcessor(GlueProcessor):
  """QQP (GLUE): id, qid1, qid2, question1, question2, is_duplicate."""
  text_a, text_b, label = 3, 4, 5
  test_text_a, test_text_b = 1, 2
  guid_column = 0


class QnliProcessor(GlueProcessor):
  """QNLI (GLUE): index, question, sentence, label."""
  labels = ("entailment", "not_entailment")
  text_a, text_b, label = 1, 2, -1
  test_text_a, test_text_b = 1, 2
  guid_column = 0


class RteProcessor(QnliProcessor):
  """RTE (GLUE): index, sentence1, sentence2, label."""


class WnliProcessor(GlueProcessor):
  """WNLI (GLUE): index, sentence1, sentence2, label (0/1)."""
  text_a, text_b, label = 1, 2, -1
  test_text_a, test_text_b = 1, 2
  guid_column = 0


class StsbProcessor(GlueProcessor):
  """STS-B (GLUE), regression: sentences in columns 7/8, score last."""
  is_regression = True
  labels = (None,)
  text_a, text_b, label = 7, 8, -1
  test_text_a, test_text_b = 7, 8
  guid_column = 0


PROCESSORS = collections.OrderedDict([
    ("cola", ColaProcessor),
    ("mnli", MnliProcessor),
    ("mrpc", MrpcProcessor),
    ("xnli", XnliProcessor),
    ("sst-2", Sst2Processor),
    ("qqp", QqpProcessor),
    ("qnli", QnliProcessor),
    ("rte", RteProcessor),
    ("wnli", WnliProcessor),
    ("sts-b", StsbProcessor),
])


def get_processor(task_name):
  """The processor of a task, by case-insensitive name.

  Args:
    task_name: e.g. "MRPC", "sts-b".

  Returns:
    A `DataProcessor` instance.

  Raises:
    ValueError: naming the known tasks, for an unknown name.
  """
  key = (task_name or "").lower()
  if key not in PROCESSORS:
    raise ValueError("Task not found: %s (known tasks: %s)" %
                     (task_name, ", ".join(PROCESSORS)))
  return PROCESSORS[key]()


def label_id(example, label_list, is_regression=False):
  """The id the model is trained on for an example's label.

  Args:
    example: an `InputExample`.
    label_list: the task's labels (ignored for regression).
    is_regression: whether the label is a float.

  Returns:
    The label's index in `label_list`, or the float for regression.

  Raises:
    ValueError: naming the example for a label outside `label_list`.
  """
  if is_regression:
    return float(example.label)
  if example.label not in label_list:
    raise ValueError("Example %s has label %r, expected one of %s" %
                     (example.guid, example.label, label_list))
  return label_list.index(example.label)


def check_labels(examples, label_list, is_regression=False):
  """Checks every example's label before any work is done on them.

  Args:
    examples: `InputExample`s with labels (train or dev).
    label_list: the task's labels.
    is_regression: whether the labels are floats.

  Raises:
    ValueError: naming the first example with a label outside `label_list`.
  """
  for example in examples:
    label_id(example, label_list, is_regression)


def convert_single_example(ex_index, example, label_list, max_seq_length,
                           tokenizer, is_regression=False, log_examples=5):
  """Tokenizes and packs one example, as the original.

  Args:
    ex_index: index of the example (the first `log_examples` are logged).
    example: `InputExample` or `PaddingInputExample`.
    label_list: the task's labels (ignored for regression).
    max_seq_length: padded length.
    tokenizer: a `FullTokenizer`.
    is_regression: whether the label is a float.
    log_examples: how many of the first examples to log (the original: 5).

  Returns:
    `InputFeatures` (label_id an int index, or the float for regression).

  Raises:
    ValueError: naming the example for a label outside `label_list`.
  """
  if isinstance(example, PaddingInputExample):
    return InputFeatures([0] * max_seq_length, [0] * max_seq_length,
                         [0] * max_seq_length,
                         0.0 if is_regression else 0, False)
  label = label_id(example, label_list, is_regression)
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  packed = pack_tokens(tokens_a, tokens_b, max_seq_length,
                       tokenizer.convert_tokens_to_ids)
  if ex_index < log_examples:
    logging.info("*** Example ***")
    logging.info("guid: %s", example.guid)
    logging.info("tokens: %s", " ".join(
        tokenization.printable_text(x) for x in packed.tokens))
    logging.info("input_ids: %s", " ".join(str(x) for x in packed.input_ids))
    logging.info("input_mask: %s", " ".join(str(x) for x in packed.input_mask))
    logging.info("segment_ids: %s",
                 " ".join(str(x) for x in packed.segment_ids))
    logging.info("label: %s (id = %s)", example.label, label)
  return InputFeatures(packed.input_ids, packed.input_mask, packed.segment_ids,
                       label, True)


def file_based_convert_examples_to_features(examples, label_list,
                                            max_seq_length, tokenizer,
                                            output_file, is_regression=False,
                                            log_examples=5):
  """Writes the examples' features to a TFRecord file, in order.

  Args:
    examples: list of `InputExample` / `PaddingInputExample`.
    label_list: the task's labels.
    max_seq_length: padded length.
    tokenizer: a `FullTokenizer`.
    output_file: the TFRecord path (written under a temporary name, renamed
      when complete).
    is_regression: write `label_ids` as a float (STS-B) instead of an int.
    log_examples: how many of the first examples to log (the original: 5).
  """
  with file_io.atomic_path(output_file) as temp, tf.io.TFRecordWriter(
      temp) as writer:
    for ex_index, example in enumerate(examples):
      if ex_index % 10000 == 0:
        logging.info("Writing example %d of %d", ex_index, len(examples))
      feature = convert_single_example(ex_index, example, label_list,
                                       max_seq_length, tokenizer,
                                       is_regression, log_examples)
      features = collections.OrderedDict()
      features["input_ids"] = record_format.create_int_feature(
          feature.input_ids)
      features["input_mask"] = record_format.create_int_feature(
          feature.input_mask)
      features["segment_ids"] = record_format.create_int_feature(
          feature.segment_ids)
      if is_regression:
        features["label_ids"] = record_format.create_float_feature(
            [feature.label_id])
      else:
        features["label_ids"] = record_format.create_int_feature(
            [feature.label_id])
      features["is_real_example"] = record_format.create_int_feature(
          [int(feature.is_real_example)])
      writer.write(record_format.features_to_example(features))


def pad_examples(examples, batch_size):
  """Appends `PaddingInputExample`s until the count is a batch multiple.

  Args:
    examples: list of examples (not modified).
    batch_size: the eval or predict batch size.

  Returns:
    A new list.
  """
  padding = -len(examples) % batch_size
  return list(examples) + [PaddingInputExample() for _ in range(padding)]


def file_based_dataset(input_file, seq_length, batch_size, is_training,
                       drop_remainder, is_regression=False,
                       input_context=None, seed=None, dynamic_padding=False):
  """Reads the fine-tuning TFRecords into batches of int32 features.

  Args:
    input_file: TFRecord path.
    seq_length: `max_seq_length` the file was written with.
    batch_size: batch size of this dataset (per replica under a strategy).
    is_training: repeat and shuffle (buffer 100, as the original).
    drop_remainder: drop a last partial batch.
    is_regression: `label_ids` is a float.
    input_context: `tf.distribute.InputContext` to shard the file by input
      pipeline (multi-worker), or None.
    seed: shuffle seed, or None.
    dynamic_padding: batches of similar lengths cut to their longest
      example, with `example_index` (see `finetuning_dataset`).

  Returns:
    A `tf.data.Dataset` of dicts: `input_ids`, `input_mask`, `segment_ids`
    [batch, seq_length] int32 (dynamic padding: [batch, <= seq_length]),
    `label_ids` [batch] (int32 or float32), `is_real_example` [batch] int32.
  """
  name_to_features = {
      "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "label_ids": tf.io.FixedLenFeature(
          [], tf.float32 if is_regression else tf.int64),
      "is_real_example": tf.io.FixedLenFeature([], tf.int64),
  }

  return finetuning_dataset.finetuning_dataset(
      input_file, name_to_features, batch_size, is_training, drop_remainder,
      input_context, seed, dynamic_padding)
