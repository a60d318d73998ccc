"""`naming`: the scope paths that give variables their original names."""

import keras

from bert_tf.modeling import naming


class _Holder(keras.layers.Layer):
  """A layer named `outer` whose build places a sub-layer and variables."""

  def __init__(self, path, **kwargs):
    super().__init__(name="outer", **kwargs)
    self.scope_path = path
    self.dense = keras.layers.Dense(2, name="dense")

  def build(self, input_shape=None):
    naming.build(self.dense, (None, 3), self.scope_path)
    self.own = naming.variable("own", (2,), "zeros", self.scope_path)
    self.top = naming.variable("top", (2,), "zeros", "/")
    self.cls = naming.variable("output_bias", (2,), "zeros", "/cls/squad")


def _paths(path):
  holder = _Holder(path)
  with keras.name_scope("model"):
    holder.build()
  return sorted(v.path for v in holder.weights)


def test_relative_absolute_and_root_paths():
  assert _paths("") == ["cls/squad/output_bias", "model/outer/dense/bias",
                        "model/outer/dense/kernel", "model/outer/own", "top"]
  assert _paths("attention/output") == [
      "cls/squad/output_bias", "model/outer/attention/output/dense/bias",
      "model/outer/attention/output/dense/kernel",
      "model/outer/attention/output/own", "top"]


def test_a_layer_keeps_the_scope_it_was_built_in():
  holder = _Holder("pooler")
  holder.build()
  holder.dense(keras.ops.ones([1, 3]))  # called outside any scope
  with keras.name_scope("elsewhere"):
    holder.dense(keras.ops.ones([1, 3]))
  assert [v.path for v in holder.dense.weights] == [
      "outer/pooler/dense/kernel", "outer/pooler/dense/bias"]
