"""Pretraining throughput (examples/s): float32 vs bfloat16 vs XLA, one process.

Trains a small BERT (hidden 256, 4 layers, 4 heads, intermediate 1024, the
vocabulary of the bundled data) with the project's `Trainer` on the bundled
`pretraining_data/expected.tfrecord` (the original create_pretraining_data
output, max_seq_length 128, max_predictions_per_seq 20), with the original
optimizer, on the one_device strategy. Every variant is built and warmed up
(tracing and compilation), then `--repeats` rounds time one loop of `--steps`
steps of each variant in turn; the script prints the median examples/s of
each variant and its ratio to float32, as a Markdown table for the README.

  PYTHONPATH=. python bench/pretraining_throughput.py --steps 10 --repeats 7
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import tensorflow as tf

from bert_tf.data import pretraining_dataset
from bert_tf.modeling import BertConfig
from bert_tf.tasks import pretraining
from bert_tf.training import distribution
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "shared", "fixtures", "pretraining_data")
VARIANTS = (("float32", "float32", False), ("bfloat16", "bfloat16", False),
            ("float32 + XLA", "float32", True),
            ("bfloat16 + XLA", "bfloat16", True))


def build(config, data, batch_size, dtype, enable_xla, steps):
  """Builds one variant and runs its warm-up loop (tracing, compilation).

  Returns:
    A function of no argument that runs `steps` steps and returns examples/s.
  """
  trainer_lib.set_dtype_policy(dtype)
  try:
    trainer = trainer_lib.Trainer(
        distribution.get_strategy("one_device"),
        pretraining.model_fn(config), pretraining.loss_fn,
        tempfile.mkdtemp(prefix="bench_"),
        optimizer_fn=lambda: optimization.create_optimizer(1e-4, 10000, 100),
        global_batch_size=batch_size, dtype=dtype, enable_xla=enable_xla)
  finally:
    trainer_lib.set_dtype_policy("float32")
  iterator = trainer.train_iterator(
      lambda context, start: pretraining_dataset.pretraining_dataset(
          [data], 128, 20, batch_size, True, context, seed=1,
          start_step=start))
  trainer.run_steps(iterator, steps)

  def timed_loop():
    started = time.perf_counter()
    logs = trainer.run_steps(iterator, steps)
    seconds = time.perf_counter() - started
    if not logs["loss"] < 100:
      raise RuntimeError("%s diverged: loss %s" % (dtype, logs["loss"]))
    return batch_size * steps / seconds

  return timed_loop


def main(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--data_dir", default=FIXTURES)
  args = parser.parse_args(argv)
  data = os.path.join(args.data_dir, "expected.tfrecord")
  with open(os.path.join(args.data_dir, "vocab.txt"), encoding="utf-8") as f:
    vocab_size = sum(1 for _ in f)
  config = BertConfig(vocab_size=vocab_size, hidden_size=256,
                      num_hidden_layers=4, num_attention_heads=4,
                      intermediate_size=1024, max_position_embeddings=128,
                      type_vocab_size=2)
  print("TensorFlow %s, %d CPU(s), batch %d, %d steps x %d repeats" %
        (tf.__version__, os.cpu_count(), args.batch_size, args.steps,
         args.repeats))
  loops = {name: build(config, data, args.batch_size, dtype, xla, args.steps)
           for name, dtype, xla in VARIANTS}
  # Round-robin, so that every variant sees the same machine load.
  rates = {name: [] for name in loops}
  for _ in range(args.repeats):
    for name, timed_loop in loops.items():
      rates[name].append(timed_loop())
  medians = {name: statistics.median(r) for name, r in rates.items()}
  for name, _, _ in VARIANTS:
    print("%-16s runs: %s" % (name, ", ".join("%.1f" % r
                                              for r in rates[name])))
  print()
  print("| variant | examples/s (median) | vs float32 |")
  print("|---|---|---|")
  for name, _, _ in VARIANTS:
    print("| %s | %.1f | %.2fx |" % (name, medians[name],
                                     medians[name] / medians["float32"]))


if __name__ == "__main__":
  main(sys.argv[1:])
