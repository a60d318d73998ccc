"""Keras building blocks of the original BERT: GELU, dropout, LayerNorm, dense layers.

Each layer carries the name of the original variable scope, and builds its
sub-layers inside its own `build`, so that Keras variable paths are exactly the
original checkpoint names (docs/architecture.md, principle 2), for example
`bert/encoder/layer_0/attention/self/query/kernel`; scopes that are no layer
are opened with `naming`. Layers and models made from a config serialize it
as its dict (`ConfigSerializable`).

The arithmetic follows google-research/bert `modeling.py` op for op where it
matters for the numbers (tanh GELU, LayerNorm with epsilon 1e-12 through
moments, the -10000 attention adder, the position table cut with `tf.slice`).
"""

import math

import keras
import tensorflow as tf

from bert_tf.modeling.config import BertConfig

LAYER_NORM_EPSILON = 1e-12


def _fused_kernel(fn):
  """`fn` compiled by XLA: a chain of element-wise ops becomes one kernel."""
  return tf.function(fn, jit_compile=True, autograph=False,
                     reduce_retracing=True)


_GELU_C = math.sqrt(2.0 / math.pi)


@_fused_kernel
def _gelu_forward(x):
  """The tanh GELU of `x`, computed in float32, returned in x's dtype."""
  x32 = tf.cast(x, tf.float32)
  cdf = 0.5 * (1.0 + tf.tanh(_GELU_C * (x32 + 0.044715 * x32 * x32 * x32)))
  return tf.cast(x32 * cdf, x.dtype)


@_fused_kernel
def _gelu_backward(dy, x):
  """dy * GELU'(x), computed in float32, returned in x's dtype."""
  x32 = tf.cast(x, tf.float32)
  t = tf.tanh(_GELU_C * (x32 + 0.044715 * x32 * x32 * x32))
  dt = (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * 0.044715 * x32 * x32)
  return tf.cast(tf.cast(dy, tf.float32) * 0.5 * (1.0 + t + x32 * dt),
                 x.dtype)


@tf.custom_gradient
def _gelu_fused(x):
  """The tanh GELU as two XLA kernels (forward and gradient) in float32."""
  return _gelu_forward(x), lambda dy: _gelu_backward(dy, x)


def _gelu_original(x):
  """The original's tanh GELU ops (float32: bitwise its numbers)."""
  cdf = 0.5 * (1.0 + tf.tanh(
      (math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3)))))
  return x * cdf


@tf.custom_gradient
def _gelu_recomputed(x):
  """The original's GELU ops; the gradient recomputed from `x` alone.

  Differentiating the original's ops keeps four tensors of x's size (x, x^3,
  the tanh and the cdf) until the backward pass; this keeps `x` and computes
  the gradient with the XLA kernel `_gelu_backward` (the same derivative, to
  float32 round-off).
  """
  return _gelu_original(x), lambda dy: _gelu_backward(dy, x)


def gelu(x, training=None):
  """Gaussian Error Linear Unit in the original's tanh approximation.

  In float32 these are the original's ops (bitwise its numbers); for
  training, their gradient is computed from the input alone
  (`_gelu_recomputed`), which keeps a quarter of the memory until the
  backward pass. In a lower-precision compute dtype (mixed_bfloat16) the same
  formula is evaluated in float32 inside fused kernels, where the original's
  eight element-wise ops would each round to bfloat16: for inference
  `tf.nn.gelu(approximate=True)`, which oneDNN fuses with the matmul and bias
  add before it; for training an XLA kernel for the forward pass and one for
  the gradient (instead of about twenty bfloat16 ops).

  Args:
    x: float Tensor.
    training: whether the result will be differentiated (selects the
      recomputing gradient in float32, the fused kernels in reduced
      precision).

  Returns:
    `x` with the GELU activation applied.
  """
  if x.dtype != tf.float32:
    if training:
      return _gelu_fused(x)
    return tf.nn.gelu(x, approximate=True)
  if training:
    return _gelu_recomputed(x)
  return _gelu_original(x)


def gelu_erf(x):
  """The exact GELU, x * Phi(x) with Phi the Gaussian CDF (through erf).

  This is Hugging Face's and PyTorch's "gelu"; the original BERT's "gelu" is
  the tanh approximation (`gelu`). A config selects it with
  `"hidden_act": "gelu_erf"`, so that weights converted from Hugging Face give
  that library's numbers. Computed in float32 whatever the input dtype.

  Args:
    x: float Tensor.

  Returns:
    `x` with the exact GELU applied, in x's dtype.
  """
  return tf.cast(tf.nn.gelu(tf.cast(x, tf.float32), approximate=False),
                 x.dtype)


_ACTIVATIONS = {
    "gelu": gelu,
    "gelu_erf": gelu_erf,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": None,
}


def get_activation(activation_string):
  """Maps a config's `hidden_act` string to a function (None for linear).

  Args:
    activation_string: "gelu" (the original's tanh form), "gelu_erf" (the
      exact form), "relu", "tanh" or "linear" (any case).

  Returns:
    A function of one Tensor, or None for "linear".

  Raises:
    ValueError: for an unknown activation name.
  """
  name = activation_string.lower()
  if name not in _ACTIVATIONS:
    raise ValueError("Unsupported activation: %r (expected one of %s)" %
                     (activation_string, ", ".join(_ACTIVATIONS)))
  return _ACTIVATIONS[name]


def create_initializer(initializer_range=0.02):
  """A truncated normal initializer with the given stddev, as the original."""
  return keras.initializers.TruncatedNormal(stddev=initializer_range)


def dropout_seed(training):
  """A fresh seed for the stateless dropouts of one call, while training.

  A stateless dropout's mask is a function of its seed alone, so a gradient
  that recomputes the forward pass (`attention.chunked_attention`, the
  recomputed blocks of `encoder.TransformerLayer`) regenerates exactly the
  forward pass's masks. A new seed is drawn at every call, so each step still
  drops different values.

  Args:
    training: Python bool or bool Tensor (whether dropout is active), or None.

  Returns:
    int32 Tensor [2], or None when `training` is False or None.
  """
  if training is False or training is None:
    return None
  return tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)


def dropout(x, rate, training, seed=None):
  """Applies dropout with `rate` only while training (as `tf.nn.dropout`).

  Args:
    x: float Tensor.
    rate: probability of dropping a value (0 means identity).
    training: Python bool or bool Tensor.
    seed: None for `tf.nn.dropout`'s random stream, or an int32 Tensor [2]
      (`dropout_seed`) for a stateless dropout whose mask the seed determines.

  Returns:
    `x`, with dropout applied when training and rate > 0.
  """
  if not rate or training is False or training is None:
    return x
  if seed is None:
    drop = lambda: tf.nn.dropout(x, rate=rate)
  else:
    drop = lambda: tf.nn.experimental.stateless_dropout(x, rate, seed)
  if training is True:
    return drop()
  return tf.cond(tf.cast(training, tf.bool), drop, lambda: x)


def _layer_norm_grads(dy, x, mean, inv_std, gamma):
  """The closed-form gradient of layer normalization (float32).

  With x^ = (x - mean) * inv_std and g = dy * gamma:
  dx = inv_std * (g - mean(g) - x^ mean(g x^)), dgamma = sum(dy x^),
  dbeta = sum(dy), means over the last axis, sums over all the others.

  Args:
    dy: float32 Tensor [..., width], the gradient of the output.
    x: float32 Tensor [..., width], the input.
    mean: float32 Tensor [..., 1], the mean of `x` over the last axis.
    inv_std: float32 Tensor [..., 1], 1 / sqrt(variance + epsilon).
    gamma: float32 Tensor [width].

  Returns:
    (dx [..., width], dgamma [width], dbeta [width]).
  """
  x_hat = (x - mean) * inv_std
  g = dy * gamma
  dx = inv_std * (g - tf.reduce_mean(g, -1, keepdims=True) -
                  x_hat * tf.reduce_mean(g * x_hat, -1, keepdims=True))
  rows = tf.range(tf.rank(dy) - 1)
  return dx, tf.reduce_sum(dy * x_hat, rows), tf.reduce_sum(dy, rows)


def _layer_norm(x, gamma, beta, epsilon):
  """The original's layer normalization of float32 `x`, closed-form gradient.

  The forward pass is the original's ops (`tf.nn.moments`,
  `tf.nn.batch_normalization`); the gradient `_layer_norm_grads` has about
  half the element-wise ops of differentiating them.

  Args:
    x: float32 Tensor [..., width].
    gamma: float32 Tensor [width].
    beta: float32 Tensor [width].
    epsilon: float added to the variance.

  Returns:
    float32 Tensor, the shape of `x`.
  """

  @tf.custom_gradient
  def forward(x, gamma, beta):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    y = tf.nn.batch_normalization(x, mean, variance, offset=beta, scale=gamma,
                                  variance_epsilon=epsilon)

    def grad(dy):
      return _layer_norm_grads(dy, x, mean, tf.math.rsqrt(variance + epsilon),
                               gamma)

    return y, grad

  return forward(x, gamma, beta)


def _moments32(x, residual, epsilon):
  """x + residual in float32, its mean and 1 / sqrt(variance + epsilon).

  The statistics are over the last axis; the sum is taken in float32.
  """
  x32 = tf.cast(x, tf.float32) + tf.cast(residual, tf.float32)
  mean = tf.reduce_mean(x32, -1, keepdims=True)
  variance = tf.reduce_mean(tf.math.squared_difference(x32, mean), -1,
                            keepdims=True)
  return x32, mean, tf.math.rsqrt(variance + epsilon)


@_fused_kernel
def _layer_norm_forward(x, residual, gamma, beta, epsilon):
  """Layer normalization of reduced-precision x + residual, as one kernel."""
  x32, mean, inv_std = _moments32(x, residual, epsilon)
  return tf.cast((x32 - mean) * (inv_std * gamma) + beta, x.dtype)


@_fused_kernel
def _layer_norm_backward(dy, x, residual, gamma, epsilon):
  """`_layer_norm_grads` for reduced-precision x + residual, as one kernel."""
  x32, mean, inv_std = _moments32(x, residual, epsilon)
  dx, dgamma, dbeta = _layer_norm_grads(tf.cast(dy, tf.float32), x32, mean,
                                        inv_std, gamma)
  return tf.cast(dx, x.dtype), dgamma, dbeta


def _layer_norm_fused(x, residual, gamma, beta, epsilon):
  """Layer normalization of bfloat16/float16 x + residual, float32 statistics.

  Two XLA kernels (the forward pass, and the gradient, which recomputes the
  statistics) replace about thirty element-wise ops and casts, most of them
  in bfloat16, which the CPU computes more slowly than float32.

  Args:
    x: reduced-precision Tensor [..., width].
    residual: Tensor of x's dtype and shape (zeros for none).
    gamma: float32 Tensor [width].
    beta: float32 Tensor [width].
    epsilon: float added to the variance.

  Returns:
    Tensor of x's dtype and shape.
  """

  @tf.custom_gradient
  def forward(x, residual, gamma, beta):
    y = _layer_norm_forward(x, residual, gamma, beta, epsilon)

    def grad(dy):
      dx, dgamma, dbeta = _layer_norm_backward(dy, x, residual, gamma,
                                               epsilon)
      return dx, dx, dgamma, dbeta

    return y, grad

  return forward(x, residual, gamma, beta)


@keras.saving.register_keras_serializable(package="bert_tf")
class LayerNorm(keras.layers.Layer):
  """Layer normalization over the last axis, named and computed as the original.

  Variables: `gamma` and `beta` of shape [width]. Statistics are computed in
  float32 whatever the compute dtype, then cast back: in float32 with the
  original's ops, in a reduced-precision compute dtype by fused XLA kernels.
  """

  def __init__(self, epsilon=LAYER_NORM_EPSILON, name="LayerNorm", **kwargs):
    super().__init__(name=name, **kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    width = input_shape[-1]
    self.beta = self.add_weight(name="beta", shape=(width,),
                                initializer="zeros", autocast=False)
    self.gamma = self.add_weight(name="gamma", shape=(width,),
                                 initializer="ones", autocast=False)

  def call(self, x, residual=None):
    """Normalizes `x` [..., width] (plus `residual`) over its last axis.

    Args:
      x: float Tensor [..., width].
      residual: optional Tensor of x's shape and dtype added to `x` first
        (inside the fused kernel in reduced precision).

    Returns:
      Tensor of x's shape and dtype.
    """
    gamma = tf.convert_to_tensor(self.gamma)
    beta = tf.convert_to_tensor(self.beta)
    if x.dtype == tf.float32:
      if residual is not None:
        x += residual
      return _layer_norm(x, gamma, beta, self.epsilon)
    if residual is None:
      residual = tf.zeros_like(x)
    return _layer_norm_fused(x, residual, gamma, beta, self.epsilon)

  def get_config(self):
    config = super().get_config()
    config["epsilon"] = self.epsilon
    return config


def dense_layer(units, initializer_range, activation=None, name="dense"):
  """A Dense layer as the original's `tf.layers.dense` (kernel/bias names)."""
  return keras.layers.Dense(
      units, activation=activation, name=name,
      kernel_initializer=create_initializer(initializer_range))


def to_matrix(x):
  """[..., width] -> [rows, width], as the original's `reshape_to_matrix`."""
  return tf.reshape(x, [-1, x.shape[-1]])


def apply_dense(x, dense_layers, activation=None):
  """Applies Dense layers side by side as one matmul on a matrix.

  The kernels (and biases) of `dense_layers` are concatenated at call time: the
  variables stay each layer's own (the original checkpoint names, e.g. the
  attention's `query`, `key`, `value`) while the work is a single
  MatMul + BiasAdd (+ activation) on a 2-D input, the pattern that Grappler's
  oneDNN remapper fuses into one kernel. Each output column is the same dot
  product as with the layers one by one.

  Args:
    x: float Tensor [rows, in] in the compute dtype.
    dense_layers: built `keras.layers.Dense` layers with input width `in`;
      their own `activation` is not applied.
    activation: optional function applied to the result.

  Returns:
    float Tensor [rows, sum of the layers' units].
  """
  kernels = [tf.cast(dense.kernel, x.dtype) for dense in dense_layers]
  biases = [tf.cast(dense.bias, x.dtype) for dense in dense_layers]
  if len(dense_layers) > 1:
    kernels, biases = [tf.concat(kernels, 1)], [tf.concat(biases, 0)]
  y = tf.nn.bias_add(tf.matmul(x, kernels[0]), biases[0])
  return y if activation is None else activation(y)


def training_activation(activation, training):
  """`activation` with `training` passed on where it matters (`gelu`).

  Args:
    activation: a function of one Tensor, or None.
    training: whether the result will be differentiated.

  Returns:
    A function of one Tensor, or None.
  """
  if activation is gelu:
    return lambda y: gelu(y, training)
  return activation


class ConfigSerializable(object):
  """Keras serialization of a layer or model made from a model config.

  Mixed in before the Keras base class. The constructor argument `config`
  (a `config_class`: `BertConfig`, or `TransformerXLConfig`) is written by
  `get_config` as its dict and read back by `from_config`; subclasses add
  their other constructor arguments to `get_config`.
  """

  config_class = BertConfig

  def get_config(self):
    config = super().get_config()
    config["config"] = self.config.to_dict()
    return config

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["config"] = cls.config_class.from_dict(config["config"])
    return super().from_config(config)
