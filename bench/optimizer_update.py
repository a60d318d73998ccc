"""The optimizer update with and without XLA: AdamWeightDecay on BERT's variables.

`AdamWeightDecay(jit_compile_update=True)` (the default) computes each
variable's next value and moments as one XLA computation (compiled once per
shape and kind of update); `jit_compile_update=False` runs the same dozen
element-wise operations one by one, each a pass over the variable. Both
optimizers update the variables of one `BertClassifier` (`--shape small`: 4
layers, hidden 256; `base`: BERT-base, 110M parameters) in one process, timed
in turn over `--rounds`:

- `update`: `apply_gradients` alone (clipping included) with fixed gradients;
- `train step`: a whole training step as `Trainer` runs it (forward and
  backward of the classifier on a batch of `--batch_size` x `--seq_length`
  random ids, cross-entropy, then the update), in float32 or
  `--dtype=bfloat16` (mixed_bfloat16).

The first call of each (tracing, and XLA's compilation) is reported apart.

Usage: python bench/optimizer_update.py --shape base --rounds 5
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

from bert_tf.modeling import BertClassifier
from bert_tf.modeling import BertConfig
from bert_tf.tasks import classifier
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib

SHAPES = {"small": (4, 256, 4, 1024), "base": (12, 768, 12, 3072)}
VARIANTS = {"op by op": False, "XLA update": True}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--shape", default="small", choices=sorted(SHAPES))
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--calls", type=int, default=5,
                      help="Calls per variant and round.")
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--seq_length", type=int, default=128)
  parser.add_argument("--dtype", default="float32",
                      choices=["float32", "bfloat16"])
  parser.add_argument("--modes", default="update,train step")
  args = parser.parse_args()

  layers, hidden, heads, intermediate = SHAPES[args.shape]
  trainer_lib.set_dtype_policy(args.dtype)
  model = BertClassifier(BertConfig(
      vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers,
      num_attention_heads=heads, intermediate_size=intermediate), 2)
  variables = model.trainable_variables
  rng = np.random.RandomState(0)
  grads = [tf.constant(rng.normal(0, 1e-3, v.shape).astype(np.float32))
           for v in variables]
  shape = [args.batch_size, args.seq_length]
  features = {
      "input_ids": tf.constant(rng.randint(1, 30522, shape), tf.int32),
      "input_mask": tf.ones(shape, tf.int32),
      "segment_ids": tf.constant(rng.randint(0, 2, shape), tf.int32),
      "label_ids": tf.constant(rng.randint(0, 2, shape[:1]), tf.int32),
  }
  step = tf.Variable(5, dtype=tf.int64)
  print("%s classifier, %d parameters, %s" % (
      args.shape, sum(int(np.prod(v.shape)) for v in variables), args.dtype))

  def make(optimizer, mode):
    if mode == "update":
      return tf.function(lambda: optimizer.apply_gradients(
          zip(grads, variables), step))

    @tf.function
    def train_step():
      with tf.GradientTape() as tape:
        loss, _ = classifier.loss_fn(model, features, True)
      optimizer.apply_gradients(
          zip(tape.gradient(loss, variables), variables), step)
      return loss
    return train_step

  for mode in args.modes.split(","):
    runs = {}
    for name, jit in VARIANTS.items():
      optimizer = optimization.AdamWeightDecay(
          1e-5, weight_decay_rate=0.01, epsilon=1e-6, clip_norm=1.0,
          jit_compile_update=jit)
      optimizer.build(variables)
      runs[name] = make(optimizer, mode)
      start = time.perf_counter()
      runs[name]()
      print("%s, %s: first call %.1f s" % (mode, name,
                                           time.perf_counter() - start))
    samples = {name: [] for name in runs}
    for _ in range(args.rounds):
      for name, run in runs.items():
        start = time.perf_counter()
        for _ in range(args.calls):
          result = run()
        float(result)
        samples[name].append(1000 * (time.perf_counter() - start) /
                             args.calls)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    print("== %s, ms per call, median of %d rounds x %d calls" %
          (mode, args.rounds, args.calls))
    for name, value in medians.items():
      print("%-12s %10.1f ms %8.2fx" % (name, value,
                                         medians["op by op"] / value))


if __name__ == "__main__":
  main()
