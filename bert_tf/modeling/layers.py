"""Keras layers of the original BERT: embeddings, attention, Transformer block, pooler.

Each layer carries the name of the original variable scope, and builds its
sub-layers inside its own `build`, so that Keras variable paths are exactly the
original checkpoint names (DESIGN.md, principle 2), for example
`bert/encoder/layer_0/attention/self/query/kernel`.

The arithmetic follows google-research/bert `modeling.py` op for op where it
matters for the numbers (tanh GELU, LayerNorm with epsilon 1e-12 through
moments, the -10000 attention adder, the position table cut with `tf.slice`).
"""

import math

import keras
import tensorflow as tf

LAYER_NORM_EPSILON = 1e-12


def gelu(x):
  """Gaussian Error Linear Unit in the original's tanh approximation.

  In float32 these are the original's ops (bitwise its numbers). In a
  lower-precision compute dtype (mixed_bfloat16) the same formula is
  `tf.nn.gelu(approximate=True)`: one op, which oneDNN fuses with the matmul and
  bias add before it and evaluates in float32 internally, where the original's
  eight element-wise ops would each round to bfloat16.

  Args:
    x: float Tensor.

  Returns:
    `x` with the GELU activation applied.
  """
  if x.dtype != tf.float32:
    return tf.nn.gelu(x, approximate=True)
  cdf = 0.5 * (1.0 + tf.tanh(
      (math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3)))))
  return x * cdf


_ACTIVATIONS = {
    "gelu": gelu,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": None,
}


def get_activation(activation_string):
  """Maps a config's `hidden_act` string to a function (None for linear).

  Args:
    activation_string: "gelu", "relu", "tanh" or "linear" (any case).

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


def dropout(x, rate, training):
  """Applies dropout with `rate` only while training (as `tf.nn.dropout`).

  Args:
    x: float Tensor.
    rate: probability of dropping a value (0 means identity).
    training: Python bool or bool Tensor.

  Returns:
    `x`, with dropout applied when training and rate > 0.
  """
  if not rate or training is False or training is None:
    return x
  if training is True:
    return tf.nn.dropout(x, rate=rate)
  return tf.cond(tf.cast(training, tf.bool),
                 lambda: tf.nn.dropout(x, rate=rate), lambda: x)


def _layer_norm(x, gamma, beta, epsilon):
  """The original's layer normalization of float32 `x` [..., width], with a
  hand-written gradient.

  The forward pass is the original's ops (`tf.nn.moments`,
  `tf.nn.batch_normalization`). The gradient is the closed form: with
  x^ = (x - mean) / sqrt(variance + epsilon) and g = dy * gamma,
  dx = (g - mean(g) - x^ mean(g x^)) / sqrt(variance + epsilon),
  dgamma = sum(dy x^), dbeta = sum(dy) (sums over every axis but the last):
  about half the element-wise ops of differentiating the forward ops.

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
      inv_std = tf.math.rsqrt(variance + epsilon)
      x_hat = (x - mean) * inv_std
      g = dy * gamma
      dx = inv_std * (g - tf.reduce_mean(g, -1, keepdims=True) -
                      x_hat * tf.reduce_mean(g * x_hat, -1, keepdims=True))
      rows = tf.range(tf.rank(dy) - 1)
      return (dx, tf.reduce_sum(dy * x_hat, rows), tf.reduce_sum(dy, rows))

    return y, grad

  return forward(x, gamma, beta)


class LayerNorm(keras.layers.Layer):
  """Layer normalization over the last axis, named and computed as the original.

  Variables: `gamma` and `beta` of shape [width]. Statistics are computed in
  float32 whatever the compute dtype, then cast back.
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

  def call(self, x):
    """Normalizes `x` [..., width] over its last axis."""
    dtype = x.dtype
    y = _layer_norm(tf.cast(x, tf.float32), tf.convert_to_tensor(self.gamma),
                    tf.convert_to_tensor(self.beta), self.epsilon)
    return tf.cast(y, dtype)

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


class ScopedDense(keras.layers.Layer):
  """A Dense layer named `dense` inside a scope of its own.

  The original writes `intermediate/dense`, `pooler/dense`: this layer is the
  scope (`intermediate`, `pooler`) holding that `dense`.
  """

  def __init__(self, units, activation, initializer_range, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.activation = activation
    self.initializer_range = initializer_range
    self.dense = dense_layer(units, initializer_range,
                             activation=get_activation(activation))

  def build(self, input_shape):
    self.dense.build(input_shape)

  def call(self, x):
    """Applies the dense layer: [..., in] -> [..., units]."""
    y = apply_dense(to_matrix(x), [self.dense], self.dense.activation)
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [self.units]], 0))

  def get_config(self):
    config = super().get_config()
    config.update(units=self.units, activation=self.activation,
                  initializer_range=self.initializer_range)
    return config


class ResidualOutput(keras.layers.Layer):
  """dense -> dropout -> add the residual -> LayerNorm (an original `output` scope).

  Serves both `attention/output` and the feed-forward `output` of every layer.
  """

  def __init__(self, units, dropout_rate, initializer_range, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.dropout_rate = dropout_rate
    self.initializer_range = initializer_range
    self.dense = dense_layer(units, initializer_range)
    self.layer_norm = LayerNorm()

  def build(self, input_shape):
    self.dense.build(input_shape)
    self.layer_norm.build(tuple(input_shape[:-1]) + (self.units,))

  def call(self, x, residual, training=None):
    """Projects `x` [..., in] and returns LayerNorm(dropout(dense(x)) + residual).

    Args:
      x: float Tensor [..., in].
      residual: float Tensor [..., units].
      training: whether dropout is active.

    Returns:
      float Tensor [..., units].
    """
    y = dropout(apply_dense(to_matrix(x), [self.dense]), self.dropout_rate,
                training)
    y = self.layer_norm(y + to_matrix(residual))
    return tf.reshape(y, tf.shape(residual))

  def get_config(self):
    config = super().get_config()
    config.update(units=self.units, dropout_rate=self.dropout_rate,
                  initializer_range=self.initializer_range)
    return config
