"""Distribution strategies from flags, and TPU resolution that fails fast.

`get_strategy` picks one of `one_device`, `mirrored`, `multi_worker_mirrored`
or `tpu` (by default: `tpu` with `--use_tpu`, `mirrored` with more than one
GPU, else `one_device`). On a machine without GPUs, `mirrored` mirrors over
every logical CPU device (see `tf.config.set_logical_device_configuration`),
which is how the tests run it on CPUs.

A TPU that cannot be reached is a `TpuUnreachableError` within seconds: the
address is checked with a TCP connection (with a timeout) before TensorFlow
tries to connect, since TensorFlow itself would wait forever.
"""

import json
import os
import socket
import threading
import urllib.parse

import tensorflow as tf

STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")


class TpuUnreachableError(RuntimeError):
  """No TPU could be found or connected to."""


def default_strategy_name(use_tpu=False, num_gpus=None):
  """The strategy used when `--distribution_strategy` is not given.

  Args:
    use_tpu: the original `--use_tpu` flag.
    num_gpus: `--num_gpus`; None counts the visible GPUs.

  Returns:
    "tpu" if `use_tpu`, "mirrored" with more than one GPU, else "one_device".
  """
  if use_tpu:
    return "tpu"
  if num_gpus is None:
    num_gpus = len(tf.config.list_physical_devices("GPU"))
  return "mirrored" if num_gpus > 1 else "one_device"


def get_strategy(distribution_strategy=None, num_gpus=None, use_tpu=False,
                 tpu_name=None, tpu_zone=None, gcp_project=None, master=None,
                 connect_timeout=10.0, init_timeout=300.0):
  """Creates a `tf.distribute.Strategy` from the run_* flags.

  Args:
    distribution_strategy: one of `STRATEGIES`, or None for the default (see
      `default_strategy_name`).
    num_gpus: GPUs to use (`mirrored`, `one_device`); None means all visible.
    use_tpu: the original `--use_tpu` flag; it must agree with a strategy
      given explicitly.
    tpu_name: the original `--tpu_name` (a Cloud TPU name or a `grpc://`
      address).
    tpu_zone: the original `--tpu_zone`.
    gcp_project: the original `--gcp_project`.
    master: the original `--master` (a `grpc://` address), used when
      `tpu_name` is not given.
    connect_timeout: seconds to wait for a TCP connection to the TPU worker.
    init_timeout: seconds to wait for the TPU system to initialize.

  Returns:
    The strategy.

  Raises:
    ValueError: for an unknown strategy name or `--use_tpu` with a non-TPU
      strategy.
    TpuUnreachableError: for `tpu` when no TPU is reachable.
  """
  name = distribution_strategy or default_strategy_name(use_tpu, num_gpus)
  if name not in STRATEGIES:
    raise ValueError("Unknown --distribution_strategy=%r (expected one of %s)"
                     % (name, ", ".join(STRATEGIES)))
  if use_tpu and name != "tpu":
    raise ValueError("--use_tpu conflicts with --distribution_strategy=%s "
                     "(use --distribution_strategy=tpu or drop --use_tpu)" %
                     name)
  if name == "multi_worker_mirrored":
    # First: collective ops must be configured before the context starts.
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = resolve_tpu(tpu_name or master, tpu_zone, gcp_project,
                           connect_timeout, init_timeout)
    return tf.distribute.TPUStrategy(resolver)
  gpus = tf.config.list_logical_devices("GPU")
  if num_gpus is not None:
    if num_gpus > len(gpus):
      raise ValueError("--num_gpus=%d but only %d GPU(s) are visible" %
                       (num_gpus, len(gpus)))
    gpus = gpus[:num_gpus]
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else
                                           "/cpu:0")
  devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
  return tf.distribute.MirroredStrategy(devices)


def _check_tf_config():
  """Validates TF_CONFIG (if set) enough to give a clear error early."""
  text = os.environ.get("TF_CONFIG")
  if not text:
    return
  try:
    config = json.loads(text)
    config["cluster"]["worker"]  # pylint: disable=pointless-statement
    config["task"]["index"]  # pylint: disable=pointless-statement
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError("TF_CONFIG must be JSON with cluster.worker and "
                     "task.index for multi_worker_mirrored, got %r (%s)" %
                     (text, e))


def resolve_tpu(tpu, zone=None, project=None, connect_timeout=10.0,
                init_timeout=300.0):
  """Finds, connects to and initializes a TPU, or fails within the timeouts.

  Args:
    tpu: a Cloud TPU name, a `grpc://host:port` address, "local", or None (a
      TPU VM's local chips, else the TPU_NAME environment variable).
    zone: GCE zone of a named Cloud TPU.
    project: GCP project of a named Cloud TPU.
    connect_timeout: seconds for the TCP check of a `grpc://` address.
    init_timeout: seconds for `initialize_tpu_system`.

  Returns:
    A connected and initialized `TPUClusterResolver`.

  Raises:
    TpuUnreachableError: with the reason, when there is no TPU to use.
  """
  if not tpu:
    tpu = os.environ.get("TPU_NAME")
  if not tpu:
    if not any(os.path.exists(p) for p in ("/dev/accel0", "/dev/vfio/0")):
      raise TpuUnreachableError(
          "--use_tpu: no TPU found: this machine has no local TPU chips "
          "(/dev/accel0) and neither --tpu_name, --master nor TPU_NAME "
          "names one")
    tpu = "local"
  if tpu.startswith("grpc://"):
    _check_reachable(tpu, connect_timeout)
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu, zone=zone, project=project)
  except Exception as e:  # pylint: disable=broad-except
    raise TpuUnreachableError("--use_tpu: cannot resolve TPU %r (zone=%s, "
                              "project=%s): %s: %s" %
                              (tpu, zone, project, type(e).__name__, e))
  master = resolver.master()
  if master.startswith("grpc://"):
    _check_reachable(master, connect_timeout)
  _run_with_timeout(lambda: _initialize(resolver), init_timeout,
                    "--use_tpu: TPU %r (%s)" % (tpu, master))
  return resolver


def _initialize(resolver):
  if resolver.master() not in ("", "local"):
    tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)


def _check_reachable(address, timeout):
  """Raises `TpuUnreachableError` unless `grpc://host:port` accepts TCP."""
  parsed = urllib.parse.urlparse(address)
  if not parsed.hostname or not parsed.port:
    raise TpuUnreachableError("--use_tpu: TPU address %r is not of the form "
                              "grpc://host:port" % address)
  try:
    with socket.create_connection((parsed.hostname, parsed.port),
                                  timeout=timeout):
      pass
  except OSError as e:
    raise TpuUnreachableError("--use_tpu: TPU worker %s is not reachable "
                              "(%s)" % (address, e))


def _run_with_timeout(fn, timeout, what):
  """Runs `fn` in a daemon thread; its failure or timeout is an error.

  Args:
    fn: function of no argument.
    timeout: seconds to wait for `fn`.
    what: the start of the error message (what `fn` initializes).

  Raises:
    TpuUnreachableError: if `fn` raised or did not return within `timeout`.
  """
  errors = []

  def target():
    try:
      fn()
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  thread = threading.Thread(target=target, daemon=True)
  thread.start()
  thread.join(timeout)
  if thread.is_alive():
    raise TpuUnreachableError("%s did not initialize within %.0f s" %
                              (what, timeout))
  if errors:
    raise TpuUnreachableError("%s failed to initialize: %s: %s" %
                              (what, type(errors[0]).__name__, errors[0]))


def is_chief(strategy):
  """Whether this process writes checkpoints and summaries (task 0).

  Args:
    strategy: a `tf.distribute.Strategy`.

  Returns:
    True except on the non-chief workers of `multi_worker_mirrored`.
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  resolver = strategy.cluster_resolver
  task_type = resolver.task_type
  return task_type in (None, "chief") or (task_type == "worker" and
                                          resolver.task_id == 0 and
                                          "chief" not in
                                          resolver.cluster_spec().as_dict())
