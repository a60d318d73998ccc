"""Contextual features of BERT layers for lines of text (`extract_features.py`).

Input: a text file, one example a line, `text_a` or `text_a ||| text_b`.
Output: one JSON object a line, in the original's layout:

  {"linex_index": 0,
   "features": [{"token": "[CLS]",
                 "layers": [{"index": -1, "values": [0.123456, ...]}, ...]},
                ...]}

with every value rounded to 6 decimal places, written under a temporary name
and renamed when complete (`file_io.atomic_file`).

`read_examples` keeps the original extract_features.py name; the original's
`convert_examples_to_features` is `pack_examples` here, as it packs token
pairs (`sentence_pairs.pack_tokens`) and to keep it apart from run_squad's
`convert_examples_to_features` (`bert_tf.data.squad`).
"""

import collections
import json
import re

from absl import logging
import numpy as np
import tensorflow as tf

from bert_tf import checkpoints
from bert_tf import file_io
from bert_tf import tokenization
from bert_tf.data import dynamic_padding as dynamic_padding_lib
from bert_tf.data import sentence_pairs
from bert_tf.modeling import BertModel

InputExample = collections.namedtuple("InputExample",
                                      ["unique_id", "text_a", "text_b"])

_PAIR = re.compile(r"^(.*) \|\|\| (.*)$")


def read_examples(input_file):
  """Reads one `InputExample` per line (blank lines included, as the original).

  Args:
    input_file: path of a UTF-8 text file.

  Returns:
    A list of `InputExample`, `unique_id` counting lines from 0.

  Raises:
    ValueError: if the file does not exist.
  """
  if not tf.io.gfile.exists(input_file):
    raise ValueError("--input_file not found: %s" % input_file)
  examples = []
  with tf.io.gfile.GFile(input_file, "r") as reader:
    for unique_id, line in enumerate(reader):
      line = tokenization.convert_to_unicode(line).strip()
      match = _PAIR.match(line)
      if match is None:
        examples.append(InputExample(unique_id, line, None))
      else:
        examples.append(InputExample(unique_id, match.group(1),
                                     match.group(2)))
  return examples


def pack_examples(examples, max_seq_length, tokenizer):
  """Tokenizes and packs examples into padded model inputs.

  Args:
    examples: list of `InputExample`.
    max_seq_length: padded length.
    tokenizer: a `tokenization.FullTokenizer`.

  Returns:
    A list of `sentence_pairs.PackedInputs`, one per example, in order.
  """
  features = []
  for index, example in enumerate(examples):
    tokens_a = tokenizer.tokenize(example.text_a)
    tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
    packed = sentence_pairs.pack_tokens(tokens_a, tokens_b, max_seq_length,
                                        tokenizer.convert_tokens_to_ids)
    if index < 5:
      logging.info("*** Example ***")
      logging.info("unique_id: %s", example.unique_id)
      logging.info("tokens: %s", " ".join(
          tokenization.printable_text(t) for t in packed.tokens))
      logging.info("input_ids: %s", " ".join(map(str, packed.input_ids)))
      logging.info("input_mask: %s", " ".join(map(str, packed.input_mask)))
      logging.info("input_type_ids: %s",
                   " ".join(map(str, packed.segment_ids)))
    features.append(packed)
  return features


def parse_layer_indexes(layers, num_layers):
  """Parses the `--layers` flag ("-1,-2,-3,-4") against the model depth.

  Args:
    layers: comma-separated ints, Python indexes into the list of layers.
    num_layers: how many layer outputs the model has
      (`BertConfig.num_encoder_outputs`: for ALBERT every inner block's).

  Returns:
    A list of ints.

  Raises:
    ValueError: for a non-integer or out-of-range index.
  """
  try:
    indexes = [int(x) for x in layers.split(",")]
  except ValueError:
    raise ValueError("--layers must be comma-separated integers, found %r" %
                     layers) from None
  for index in indexes:
    if not -num_layers <= index < num_layers:
      raise ValueError(
          "--layers index %d is out of range for a model with %d layers "
          "(expected %d..%d)" % (index, num_layers, -num_layers,
                                 num_layers - 1))
  return indexes


def extract(model, features, layer_indexes, batch_size, dynamic_padding=False):
  """Runs the encoder over packed features and yields each example's layers.

  Args:
    model: a `BertModel`.
    features: list of `sentence_pairs.PackedInputs` of one padded length.
    layer_indexes: which encoder layers to return (Python indexes).
    batch_size: examples per forward pass.
    dynamic_padding: run batches of similar lengths cut to their longest
      example (`data.dynamic_padding.batch_by_length`), one trace for every
      length; the outputs are the same and still come in input order.

  Returns:
    An iterator yielding, for each feature in order, a float32 array
    [len(layer_indexes), num_tokens, hidden] of the selected layers at the
    real tokens.
  """
  if not features:
    return iter(())
  seq_spec = tf.TensorSpec([None, None], tf.int32)

  @tf.function(input_signature=[seq_spec, seq_spec, seq_spec])
  def encode(input_ids, input_mask, segment_ids):
    outputs = model({"input_ids": input_ids, "input_mask": input_mask,
                     "segment_ids": segment_ids}, training=False)
    layers = outputs["encoder_outputs"]
    return tf.stack([layers[i] for i in layer_indexes])  # [L, B, S, H]

  names = ("input_ids", "input_mask", "segment_ids")
  dataset = dynamic_padding_lib.with_example_index(
      tf.data.Dataset.from_tensor_slices(
          {name: np.array([getattr(f, name) for f in features], np.int32)
           for name in names}))
  if dynamic_padding:
    dataset = dynamic_padding_lib.batch_by_length(
        dataset, batch_size, len(features[0].input_ids))
  else:
    dataset = dataset.batch(batch_size)

  def indexed_values():
    for batch in dataset:
      stacked = encode(*[batch[name] for name in names]).numpy()
      for i, index in enumerate(
          batch[dynamic_padding_lib.EXAMPLE_INDEX].numpy()):
        yield index, stacked[:, i, :len(features[index].tokens), :].copy()

  return dynamic_padding_lib.in_input_order(indexed_values())


def to_json_line(unique_id, tokens, layer_values, layer_indexes):
  """Formats one example's output as the original's JSON line.

  Args:
    unique_id: the example's line index.
    tokens: list of tokens (with [CLS]/[SEP]).
    layer_values: float array [len(layer_indexes), len(tokens), hidden].
    layer_indexes: the layer indexes, as given in `--layers`.

  Returns:
    A JSON string ending in a newline.
  """
  output = collections.OrderedDict()
  output["linex_index"] = unique_id
  all_features = []
  for position, token in enumerate(tokens):
    all_layers = []
    for j, layer_index in enumerate(layer_indexes):
      layer = collections.OrderedDict()
      layer["index"] = layer_index
      layer["values"] = [round(float(x), 6)
                         for x in layer_values[j, position]]
      all_layers.append(layer)
    feature = collections.OrderedDict()
    feature["token"] = token
    feature["layers"] = all_layers
    all_features.append(feature)
  output["features"] = all_features
  return json.dumps(output) + "\n"


def run(input_file, output_file, bert_config, init_checkpoint, tokenizer,
        layers="-1,-2,-3,-4", max_seq_length=128, batch_size=32,
        use_one_hot_embeddings=False, dynamic_padding=False):
  """Extracts features of every line of `input_file` into `output_file`.

  The output is written under a temporary name and renamed when complete.

  Args:
    input_file: text file, one example a line.
    output_file: JSON-lines output path.
    bert_config: `BertConfig`.
    init_checkpoint: checkpoint prefix or directory.
    tokenizer: `tokenization.FullTokenizer`.
    layers: the `--layers` flag value.
    max_seq_length: padded length of every example.
    batch_size: examples per forward pass.
    use_one_hot_embeddings: see `BertModel`.
    dynamic_padding: batches cut to their longest example (see `extract`).

  Returns:
    The number of examples written.

  Raises:
    ValueError: on invalid flags, files or checkpoints.
  """
  if max_seq_length < 3:
    raise ValueError("--max_seq_length must be at least 3, found %d" %
                     max_seq_length)
  bert_config.check_max_seq_length(max_seq_length)
  layer_indexes = parse_layer_indexes(layers,
                                      bert_config.num_encoder_outputs)
  examples = read_examples(input_file)
  features = pack_examples(examples, max_seq_length, tokenizer)

  model = BertModel(bert_config, use_one_hot_embeddings=use_one_hot_embeddings)
  report = checkpoints.load_checkpoint(model, init_checkpoint)
  logging.info("%s", report.summary())

  with file_io.atomic_file(output_file) as writer:
    results = extract(model, features, layer_indexes, batch_size,
                      dynamic_padding)
    for example, feature, values in zip(examples, features, results):
      writer.write(to_json_line(example.unique_id, feature.tokens, values,
                                layer_indexes))
  return len(examples)
