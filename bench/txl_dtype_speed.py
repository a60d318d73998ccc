"""Transformer-XL speed per compute dtype: float32, bfloat16, float16, one process.

Trains and evaluates the same Transformer-XL character model (random
weights, the byte vocabulary of enwik8_small) as run_transformer_xl.py does,
once per `--dtype`:

- training: the project's `Trainer` with the task's memory and loss
  (`tasks.transformer_xl_lm`), the original Adam with clipping, on the
  one_device strategy, reading the ordered TFRecords of `lm_bytes`; float16
  with dynamic loss scaling;
- evaluation: one segment with memory per call (a `tf.function` of fixed
  shapes), as `run_transformer_xl.py --do_eval` runs the split.

Every variant is built and warmed up (tracing) first; then `--rounds` rounds
time each variant in turn (so the machine's load hits all of them), and the
script prints the median tokens/s of each and, as a Markdown table, the
median over rounds of its ratio to float32 in the same round (on a shared
machine the load changes between rounds more than within one). On a CPU, bfloat16 is fast only with bfloat16 instructions
(`lscpu`: avx512_bf16, amx_bf16) and float16 only with avx512_fp16 / AMX-FP16;
the script prints which of those flags the CPU has.

  PYTHONPATH=. python bench/txl_dtype_speed.py --rounds 5
"""

import argparse
import os
import pathlib
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

from bert_tf.data import lm_bytes
from bert_tf.modeling import transformer_xl
from bert_tf.tasks import transformer_xl_lm
from bert_tf.training import distribution
from bert_tf.training import optimization
from bert_tf.training import trainer as trainer_lib

CORPUS = (pathlib.Path(__file__).resolve().parents[2] / "shared" /
          "fixtures" / "corpora" / "enwik8_small.txt")
# CPU flags that make reduced-precision matmuls fast.
REDUCED_PRECISION_FLAGS = ("avx512_bf16", "amx_bf16", "avx512_fp16",
                           "amx_fp16", "amx_tile")


def cpu_flags():
  """The CPU's flags among `REDUCED_PRECISION_FLAGS` (from /proc/cpuinfo)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      flags = set(next((line.split(":", 1)[1].split() for line in f
                        if line.startswith("flags")), []))
  except OSError:
    return "unknown"
  return ", ".join(f for f in REDUCED_PRECISION_FLAGS if f in flags) or "none"


def build(config, args, dtype, train_path, eval_ids):
  """Builds one dtype's trainer and evaluation and warms both up.

  Args:
    config: `TransformerXLConfig`.
    args: the parsed flags (batch, tgt_len, steps).
    dtype: "float32", "bfloat16" or "float16".
    train_path: the training TFRecords of `lm_bytes`.
    eval_ids: int32 [batch, length] evaluation streams.

  Returns:
    {"train": f, "eval": f}: functions of no argument running one timed
    loop and returning its tokens/s.
  """
  trainer_lib.set_dtype_policy(dtype)
  try:
    tf.random.set_seed(0)
    strategy = distribution.get_strategy("one_device")
    with strategy.scope():
      memory = transformer_xl_lm.Memory(config, args.batch)
    trainer = trainer_lib.Trainer(
        strategy, lambda: transformer_xl.TransformerXL(config),
        transformer_xl_lm.lm_loss_fn(memory), tempfile.mkdtemp(
            prefix="bench_txl_"),
        optimizer_fn=lambda: optimization.create_transformer_xl_optimizer(
            2.5e-4, 100000, 0, 0.25, 0.004),
        global_batch_size=args.batch, dtype=dtype)
  finally:
    trainer_lib.set_dtype_policy("float32")
  iterator = trainer.train_iterator(
      lambda context, start: lm_bytes.input_dataset(
          train_path, args.batch, True, context, start))
  model = trainer.model
  qlen = args.tgt_len
  inputs = tf.constant(eval_ids.T)  # [length, batch], time-major

  @tf.function(input_signature=[
      tf.TensorSpec([qlen, args.batch], tf.int32),
      tf.TensorSpec([qlen, args.batch], tf.int32),
      [tf.TensorSpec([config.mem_len, args.batch, config.d_model])] *
      config.n_layer])
  def segment(x, y, mems):
    outputs = model(x, mems=mems, targets=y)
    return (tf.reduce_sum(transformer_xl_lm.token_nll(outputs)),
            outputs["new_mems"])

  def train():
    started = time.perf_counter()
    logs = trainer.run_steps(iterator, args.steps)
    seconds = time.perf_counter() - started
    if not np.isfinite(logs["loss"]):
      raise RuntimeError("%s training diverged: loss %s" % (dtype,
                                                          logs["loss"]))
    return args.batch * qlen * args.steps / seconds

  def evaluate():
    mems = model.init_mems(args.batch)
    started = time.perf_counter()
    total = 0.0
    for t in range(0, args.eval_segments * qlen, qlen):
      nll, mems = segment(inputs[t:t + qlen], inputs[t + 1:t + qlen + 1],
                          mems)
      total += float(nll)
    seconds = time.perf_counter() - started
    if not np.isfinite(total):
      raise RuntimeError("%s evaluation gave nll %s" % (dtype, total))
    return args.batch * qlen * args.eval_segments / seconds

  loops = {"train": train, "eval": evaluate}
  for loop in loops.values():
    loop()  # traces
  return loops


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dtypes", default="float32,bfloat16,float16",
                      help="compute dtypes, comma separated")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=5,
                      help="training steps per timed loop")
  parser.add_argument("--eval_segments", type=int, default=5,
                      help="evaluation segments per timed loop")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--tgt_len", type=int, default=128)
  parser.add_argument("--mem_len", type=int, default=128)
  parser.add_argument("--n_layer", type=int, default=4)
  parser.add_argument("--d_model", type=int, default=256)
  parser.add_argument("--n_head", type=int, default=8)
  args = parser.parse_args()
  dtypes = args.dtypes.split(",")
  if dtypes[0] != "float32":
    raise ValueError("--dtypes must start with float32 (the reference), "
                     "got %r" % args.dtypes)

  data_dir = tempfile.mkdtemp(prefix="bench_txl_data_")
  prepared = lm_bytes.prepare_corpus(str(CORPUS), data_dir, args.batch,
                                     args.batch, args.tgt_len, args.tgt_len,
                                     0.05, 0.0)
  n_token = prepared["corpus_info"]["vocab_size"]
  train_path = os.path.join(data_dir, lm_bytes.record_file_name(
      "train", args.batch, args.tgt_len))
  data = CORPUS.read_bytes()
  ids = lm_bytes.encode(data, lm_bytes.build_vocab(data)).astype(np.int32)
  eval_ids = lm_bytes.batchify(ids, args.batch)
  config = transformer_xl.TransformerXLConfig(
      n_token=n_token, n_layer=args.n_layer, d_model=args.d_model,
      d_embed=args.d_model, n_head=args.n_head,
      d_head=args.d_model // args.n_head, d_inner=4 * args.d_model,
      dropout=0.1, dropatt=0.0, mem_len=args.mem_len)
  print("TensorFlow %s, %d CPU(s), reduced-precision CPU flags: %s" %
        (tf.__version__, os.cpu_count(), cpu_flags()))
  print("model: %d layers, d_model %d, %d heads, d_inner %d, tgt_len %d, "
        "mem_len %d, batch %d; %d training steps and %d eval segments per "
        "loop, %d rounds" %
        (args.n_layer, args.d_model, args.n_head, 4 * args.d_model,
         args.tgt_len, args.mem_len, args.batch, args.steps,
         args.eval_segments, args.rounds), flush=True)
  loops = {dtype: build(config, args, dtype, train_path, eval_ids)
           for dtype in dtypes}
  rates = {(dtype, mode): [] for dtype in dtypes for mode in ("train", "eval")}
  for _ in range(args.rounds):
    for dtype in dtypes:
      for mode, loop in loops[dtype].items():
        rates[dtype, mode].append(loop())
  for key, values in rates.items():
    print("%-8s %-5s tokens/s: %s" % (key + (", ".join(
        "%.0f" % v for v in values),)))
  print()
  print("| dtype | training tokens/s | vs float32 | evaluation tokens/s | "
        "vs float32 |")
  print("|---|---|---|---|---|")
  medians = {key: statistics.median(v) for key, v in rates.items()}
  ratios = {(dtype, mode): statistics.median(
      a / b for a, b in zip(rates[dtype, mode], rates["float32", mode]))
            for dtype, mode in rates}
  for dtype in dtypes:
    print("| %s | %.0f | %.2fx | %.0f | %.2fx |" % (
        dtype, medians[dtype, "train"], ratios[dtype, "train"],
        medians[dtype, "eval"], ratios[dtype, "eval"]))


if __name__ == "__main__":
  main()
