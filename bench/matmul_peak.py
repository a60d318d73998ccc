"""Measures this machine's matmul peak (GFLOP/s) in float32 and bfloat16.

The peak is the best of several square matmuls, the reference for model FLOPs
utilization in `encoder_throughput.py`.

Usage: python bench/matmul_peak.py [--size 2048] [--repeats 20]
"""

import argparse
import time

import tensorflow as tf


def matmul_peak(dtype, size=2048, repeats=20):
  """Returns the best GFLOP/s of `size`x`size` matmuls in `dtype`.

  Args:
    dtype: tf.float32 or tf.bfloat16.
    size: matrix side.
    repeats: timed matmuls (after two warm-ups); the best one counts.

  Returns:
    float GFLOP/s.
  """
  a = tf.random.normal([size, size], dtype=tf.float32)
  a = tf.cast(a, dtype)
  b = tf.cast(tf.random.normal([size, size]), dtype)
  matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(
      tf.matmul(x, y), tf.float32)))
  for _ in range(2):
    matmul(a, b).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2.0 * size ** 3 / best / 1e9


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--size", type=int, default=2048)
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
    print("matmul peak %-8s %8.1f GFLOP/s" %
          (name, matmul_peak(dtype, args.size, args.repeats)))


if __name__ == "__main__":
  main()
