"""Keras building blocks of the original BERT: GELU, dropout, LayerNorm, dense layers.

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

  Args:
    x: float Tensor.

  Returns:
    `x` with the GELU activation applied.
  """
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
    x = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    y = tf.nn.batch_normalization(x, mean, variance, offset=self.beta,
                                  scale=self.gamma,
                                  variance_epsilon=self.epsilon)
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


class ScopedDense(keras.layers.Layer):
  """A Dense layer named `dense` inside a scope of its own.

  The original writes `pooler/dense`: this layer is the scope (`pooler`)
  holding that `dense`. (Transformer blocks place their dense layers with
  explicit scopes instead, see `encoder.TransformerLayer`.)
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
    return self.dense(x)

  def get_config(self):
    config = super().get_config()
    config.update(units=self.units, activation=self.activation,
                  initializer_range=self.initializer_range)
    return config
