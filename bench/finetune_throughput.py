"""Fine-tuning throughput on MRPC: bert_tf against keras-hub and Model Garden.

The fixtures' MRPC (`glue/MRPC`: the 3,668 training pairs, the 1,725 test
pairs) is tokenized once with `FullTokenizer` (the uncased 30,522-word
vocabulary) and written as run_classifier's TFRecords at `--max_seq_length`;
every arm reads those records, so all see the same tokens. Arms, each in
float32 and mixed_bfloat16, one process, rounds interleaving the arms:

- `bert_tf fixed`: run_classifier's path through the package, the records
  padded to max_seq_length (`--nodynamic_padding`): `Trainer` with
  `tasks.classifier` (model, loss) and `optimization.create_optimizer`,
  `glue.file_based_dataset` for input, `inference.predict_all` for prediction;
- `bert_tf dynamic`: the same with `dynamic_padding=True` (batches of similar
  lengths cut to their longest example, `data.dynamic_padding`);
- `keras_hub`: `keras_hub.models.BertTextClassifier` over a `BertBackbone` of
  the same size, `compile` + `fit` / `predict` (no XLA: `jit_compile=False`);
- `model_garden`: `official.nlp.modeling.models.BertClassifier` over a
  `BertEncoderV2` of the same size, tf_keras `compile` + `fit` / `predict`.

The same optimizer everywhere: AdamW-style Adam with decoupled weight decay
0.01 (not for LayerNorm and biases), betas 0.9/0.999, epsilon 1e-6, linear
warmup (10%) then linear decay from `--learning_rate` over 3 epochs, clipping
by global norm 1.0: bert_tf's `AdamWeightDecay` (the original's, no bias
correction), Model Garden's `optimization.create_optimizer` (its
`AdamWeightDecay`), Keras 3's `AdamW` for keras-hub (bias-corrected). Random
initial weights and dropout 0.1 for every implementation.

Training: `--train_steps` steps of `--train_batch_size` per arm and round
(shuffled pairs of the whole training set), after warm-up steps that trace
the step. Prediction: the test pairs (`--predict_examples`, default all) at
`--predict_batch_size`, one pass per arm and round, each with the tracing of
its predict function (bert_tf's `predict_all` traces on every call, as once
per run_classifier run; the peers' `predict_function` is reset to the same
end). Examples/s are medians
over `--rounds`; ratios are against bert_tf fixed and the best peer setting.

Usage:
  python bench/finetune_throughput.py --rounds 3
  python bench/finetune_throughput.py --shape base --modes predict \\
      --predict_examples 256 --rounds 2
"""

import argparse
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from bert_tf import tokenization
from bert_tf.data import glue
from bert_tf.modeling import BertConfig
from bert_tf.tasks import classifier
from bert_tf.tasks import inference
from bert_tf.training import distribution
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "shared", "fixtures")
MRPC = os.path.join(FIXTURES, "glue", "MRPC")
VOCAB = os.path.join(FIXTURES, "vocab", "uncased_vocab.txt")
SHAPES = {  # name: (layers, hidden, heads, intermediate)
    "small": (4, 256, 4, 1024),
    "base": (12, 768, 12, 3072),
}
ARMS = ("bert_tf fixed", "bert_tf dynamic", "keras_hub", "model_garden")
SETTINGS = ("float32", "mixed_bfloat16")
EPOCHS = 3
WARMUP_PROPORTION = 0.1
WEIGHT_DECAY = 0.01
NO_DECAY = ("LayerNorm", "layer_norm", "bias", "gamma", "beta")


def write_records(max_seq_length, files, num_predict):
  """Tokenizes MRPC once and writes run_classifier's records.

  Args:
    max_seq_length: padded length of the records.
    files: dict with the `train` and `predict` record paths to write.
    num_predict: how many of the test pairs to write (None: all).

  Returns:
    (processor, number of training pairs, number of test pairs, the mean
    packed length of the training pairs).
  """
  processor = glue.get_processor("mrpc")
  tokenizer = tokenization.FullTokenizer(VOCAB, do_lower_case=True)
  train = processor.get_train_examples(MRPC)
  test = processor.get_test_examples(MRPC)
  for examples, name in ((train, "train"), (test[:num_predict], "predict")):
    classifier.write_examples(examples, processor, max_seq_length, tokenizer,
                              files[name], log_examples=0)
  lengths = [batch["input_mask"].sum(axis=1) for batch in dataset(
      files["train"], max_seq_length, 256).as_numpy_iterator()]
  return processor, len(train), len(test), float(np.concatenate(
      lengths).mean())


def dataset(record_file, max_seq_length, batch_size, is_training=False,
            dynamic_padding=False):
  """run_classifier's dataset of a record file (training: repeated, shuffled).
  """
  return glue.file_based_dataset(
      record_file, max_seq_length, batch_size, is_training=is_training,
      drop_remainder=is_training, seed=0, dynamic_padding=dynamic_padding)


def _set_policy(arm, setting):
  """Sets the global dtype policy of the arm's Keras (tf_keras for Garden)."""
  if arm == "model_garden":
    import tf_keras  # pylint: disable=g-import-not-at-top
    tf_keras.mixed_precision.set_global_policy(setting)
  else:
    import keras  # pylint: disable=g-import-not-at-top
    keras.mixed_precision.set_global_policy(setting)


def _peer_inputs(arm, features):
  """Maps run_classifier's features to a peer's input names (and labels)."""
  if arm == "keras_hub":
    inputs = {"token_ids": features["input_ids"],
              "segment_ids": features["segment_ids"],
              "padding_mask": features["input_mask"]}
  else:
    inputs = {"input_word_ids": features["input_ids"],
              "input_mask": features["input_mask"],
              "input_type_ids": features["segment_ids"]}
  return inputs, features["label_ids"]


class BertTfArm(object):
  """bert_tf through its package, the way run_classifier drives it."""

  def __init__(self, config, processor, setting, files, args,
               dynamic_padding):
    """Builds the `Trainer` (model and optimizer) and the datasets.

    Args:
      config: `BertConfig`.
      processor: MRPC's `DataProcessor`.
      setting: "float32" or "mixed_bfloat16".
      files: dict with `train`, `predict` record paths and `output_dir`.
      args: the parsed flags.
      dynamic_padding: whether batches are cut to their longest example.
    """
    dtype = "bfloat16" if setting == "mixed_bfloat16" else "float32"
    trainer_lib.set_dtype_policy(dtype)
    num_steps, warmup = args.num_train_steps, args.num_warmup_steps
    self.trainer = trainer_lib.Trainer(
        distribution.get_strategy("one_device"),
        classifier.model_fn(config, processor), classifier.loss_fn,
        files["output_dir"],
        optimizer_fn=lambda: optimization.create_optimizer(
            args.learning_rate, num_steps, warmup),
        global_batch_size=args.train_batch_size, dtype=dtype)
    trainer_lib.set_dtype_policy("float32")
    self.iterator = self.trainer.train_iterator(
        lambda context, start: dataset(
            files["train"], args.max_seq_length, args.train_batch_size,
            is_training=True, dynamic_padding=dynamic_padding))
    self.predict_dataset = dataset(
        files["predict"], args.max_seq_length, args.predict_batch_size,
        dynamic_padding=dynamic_padding)

  def train(self, steps):
    """Runs `steps` training steps."""
    self.trainer.run_steps(self.iterator, steps)

  def predict(self):
    """Predicts the test pairs; returns the probabilities [examples, 2]."""
    model = self.trainer.model
    return inference.predict_all(
        self.trainer.strategy,
        lambda f: classifier.run_with_loss(model, f, False),
        self.predict_dataset, ["probabilities"])["probabilities"]


class KerasArm(object):
  """keras-hub's BertTextClassifier or Model Garden's BertClassifier."""

  def __init__(self, arm, shape, setting, files, args):
    """Builds and compiles the peer's classifier; makes its datasets.

    Args:
      arm: "keras_hub" or "model_garden".
      shape: (layers, hidden, heads, intermediate).
      setting: "float32" or "mixed_bfloat16".
      files: dict with `train` and `predict` record paths.
      args: the parsed flags.
    """
    layers, hidden, heads, intermediate = shape
    _set_policy(arm, setting)
    if arm == "keras_hub":
      import keras_hub  # pylint: disable=g-import-not-at-top
      backbone = keras_hub.models.BertBackbone(
          vocabulary_size=args.vocab_size, num_layers=layers, num_heads=heads,
          hidden_dim=hidden, intermediate_dim=intermediate, dropout=0.1,
          max_sequence_length=512)
      self.model = keras_hub.models.BertTextClassifier(
          backbone, num_classes=2, preprocessor=None, dropout=0.1)
      optimizer = keras.optimizers.AdamW(
          learning_rate=KerasSchedule(args.learning_rate,
                                      args.num_train_steps,
                                      args.num_warmup_steps),
          weight_decay=WEIGHT_DECAY,
          beta_1=0.9, beta_2=0.999, epsilon=1e-6, global_clipnorm=1.0)
      optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
      self.model.compile(
          optimizer=optimizer,
          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
          jit_compile=False)
    else:
      import tf_keras  # pylint: disable=g-import-not-at-top
      from official.nlp import optimization as garden_optimization  # pylint: disable=g-import-not-at-top
      from official.nlp.modeling import models  # pylint: disable=g-import-not-at-top
      from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
      encoder = networks.BertEncoderV2(
          vocab_size=args.vocab_size, hidden_size=hidden, num_layers=layers,
          num_attention_heads=heads, inner_dim=intermediate,
          type_vocab_size=2, output_dropout=0.1, attention_dropout=0.1)
      self.model = models.BertClassifier(encoder, num_classes=2,
                                         dropout_rate=0.1)
      # Its AdamWeightDecay clips by global norm 1.0 (gradient_clip_norm).
      optimizer = garden_optimization.create_optimizer(
          args.learning_rate, args.num_train_steps, args.num_warmup_steps)
      self.model.compile(
          optimizer=optimizer,
          loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _set_policy(arm, "float32")
    self.train_dataset = dataset(
        files["train"], args.max_seq_length, args.train_batch_size,
        is_training=True).map(lambda f: _peer_inputs(arm, f))
    self.predict_dataset = dataset(
        files["predict"], args.max_seq_length,
        args.predict_batch_size).map(lambda f: _peer_inputs(arm, f)[0])

  def train(self, steps):
    """Runs `steps` training steps of `fit`."""
    start = int(self.model.optimizer.iterations.numpy())
    self.model.fit(self.train_dataset, epochs=1, steps_per_epoch=steps,
                   verbose=0)
    done = int(self.model.optimizer.iterations.numpy()) - start
    if done != steps:
      raise RuntimeError("fit ran %d steps, not %d" % (done, steps))

  def predict(self):
    """Predicts the test pairs; returns the probabilities [examples, 2].

    The predict function is traced again, as in a new process (and as
    bert_tf's `predict_all` does on every call).
    """
    self.model.predict_function = None
    logits = self.model.predict(self.predict_dataset, verbose=0)
    return tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()


class KerasSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """bert_tf's warmup + linear decay as a Keras 3 learning rate schedule."""

  def __init__(self, init_lr, num_train_steps, num_warmup_steps):
    """See `optimization.learning_rate_schedule`."""
    self.schedule = optimization.learning_rate_schedule(
        init_lr, num_train_steps, num_warmup_steps)

  def __call__(self, step):
    return self.schedule(step)


def build(arm, config, processor, shape, setting, files, args):
  """Builds one arm in one setting."""
  if arm.startswith("bert_tf"):
    return BertTfArm(config, processor, setting, files, args,
                     dynamic_padding=arm == "bert_tf dynamic")
  return KerasArm(arm, shape, setting, files, args)


def report(title, samples, unit):
  """Prints medians, the ratio to bert_tf fixed and to the best peer."""
  medians = {key: statistics.median(v) for key, v in samples.items()}
  peers = [v for (arm, _), v in medians.items() if not arm.startswith("bert")]
  best_peer = max(peers) if peers else None
  fixed = {setting: v for (arm, setting), v in medians.items()
           if arm == "bert_tf fixed"}
  print("\n== %s" % title)
  print("%-16s %-15s %12s %12s %14s" % ("arm", "setting", unit,
                                        "vs fixed", "vs best peer"))
  for (arm, setting), value in sorted(medians.items(), key=lambda kv: -kv[1]):
    vs_fixed = ("%.2fx" % (value / fixed[setting]) if setting in fixed
                else "-")
    vs_peer = "%.2fx" % (value / best_peer) if best_peer else "-"
    print("%-16s %-15s %12.1f %12s %14s" % (arm, setting, value, vs_fixed,
                                            vs_peer))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
  parser.add_argument("--arms", default=",".join(ARMS))
  parser.add_argument("--settings", default=",".join(SETTINGS))
  parser.add_argument("--modes", default="train,predict")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--max_seq_length", type=int, default=128)
  parser.add_argument("--train_batch_size", type=int, default=32)
  parser.add_argument("--predict_batch_size", type=int, default=32)
  parser.add_argument("--train_steps", type=int, default=10,
                      help="Timed training steps per arm and round.")
  parser.add_argument("--warmup_steps", type=int, default=10,
                      help="Untimed training steps per arm before the rounds.")
  parser.add_argument("--warmup_predictions", type=int, default=1,
                      help="Untimed prediction passes per arm before the "
                      "rounds.")
  parser.add_argument("--predict_examples", type=int, default=None,
                      help="The first test pairs to predict (default all "
                      "1,725).")
  parser.add_argument("--learning_rate", type=float, default=2e-5)
  args = parser.parse_args()

  layers, hidden, heads, intermediate = shape = SHAPES[args.shape]
  args.vocab_size = len(tokenization.load_vocab(VOCAB))
  config = BertConfig(vocab_size=args.vocab_size, hidden_size=hidden,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=intermediate,
                      max_position_embeddings=512, type_vocab_size=2)
  work = tempfile.mkdtemp()
  files = {"train": os.path.join(work, "train.tf_record"),
           "predict": os.path.join(work, "predict.tf_record")}
  processor, num_train, num_test, mean_length = write_records(
      args.max_seq_length, files, args.predict_examples)
  args.num_train_steps = EPOCHS * num_train // args.train_batch_size
  args.num_warmup_steps = int(args.num_train_steps * WARMUP_PROPORTION)
  num_predict = min(args.predict_examples or num_test, num_test)
  print("MRPC: %d training pairs (mean %.1f of %d tokens), %d test pairs "
        "(%d predicted); %s shape (%d layers, hidden %d)" %
        (num_train, mean_length, args.max_seq_length, num_test, num_predict,
         args.shape, layers, hidden))

  arms = {}
  for arm in args.arms.split(","):
    for setting in args.settings.split(","):
      files["output_dir"] = os.path.join(work, "%s_%s" % (arm, setting))
      runner = build(arm, config, processor, shape, setting, files, args)
      if "train" in args.modes:
        runner.train(args.warmup_steps)
      for _ in range(args.warmup_predictions if "predict" in args.modes
                     else 0):
        runner.predict()
      arms[(arm, setting)] = runner

  train = {key: [] for key in arms}
  predict = {key: [] for key in arms}
  for _ in range(args.rounds):
    for key, runner in arms.items():
      if "train" in args.modes:
        start = time.perf_counter()
        runner.train(args.train_steps)
        train[key].append(args.train_steps * args.train_batch_size /
                          (time.perf_counter() - start))
      if "predict" in args.modes:
        start = time.perf_counter()
        probabilities = runner.predict()
        predict[key].append(len(probabilities) /
                            (time.perf_counter() - start))
  if "train" in args.modes:
    report("training examples/s (%d steps of %d per round, median of %d)" %
           (args.train_steps, args.train_batch_size, args.rounds), train,
           "examples/s")
  if "predict" in args.modes:
    report("prediction examples/s (%d pairs at batch %d, median of %d)" %
           (num_predict, args.predict_batch_size, args.rounds), predict,
           "examples/s")


if __name__ == "__main__":
  main()
