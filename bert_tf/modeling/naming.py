"""Original variable names: the one mechanism that places variables in scopes.

A Keras variable's `path` is its checkpoint name (docs/architecture.md, principle 2).
Keras 3 makes that path from the name scopes open when the variable is
created: every layer opens a scope of its own name while it builds, so a
layer named `embeddings` built inside the model named `bert` owns
`bert/embeddings/word_embeddings`. Most original scopes are layers in this
way (`bert`, `embeddings`, `encoder`, `layer_<i>`, `cls`, `predictions`, ...),
and need nothing more.

Where the original has a scope that computes nothing of its own, or a
variable at the root of the checkpoint, the layer that owns the variables
opens that scope with this module:

- `build(layer, input_shape, path)`: builds a sub-layer under extra scopes,
  e.g. a Transformer block's `self` attention under `attention`
  (`layer_0/attention/self/query/kernel`), ALBERT's blocks under
  `transformer/group_<g>`, the pooler's `dense` under `pooler`, the SQuAD
  head `squad` under `cls`;
- `variable(name, shape, initializer, path)`: a variable made directly under
  a path, e.g. Transformer-XL's `adaptive_softmax/cutoff_0/b`, or the
  classifier's `output_weights` at the root (`path="/"`).

Paths are relative to the scope open at the time (that of the layer being
built); a leading "/" starts from the root of the checkpoint. A layer keeps
the scope it was first built in, so later calls (and reloading a saved
model, which constructs and builds it again) give the same paths.
"""

import contextlib

import keras


@contextlib.contextmanager
def scope(path):
  """Opens the name scopes of `path` for the variables created inside.

  Args:
    path: "a/b" opens `a` then `b` inside the current scope; "" opens none;
      a leading "/" starts from the root ("/cls": the top-level `cls`). "/"
      alone is the root itself, where only variables made with `variable`
      (not layers, whose own scope would follow a "/") may be created.

  Yields:
    None.
  """
  names = [name for name in path.split("/") if name]
  with contextlib.ExitStack() as stack:
    if path.startswith("/"):
      # `override_parent` replaces every scope opened before; with the name
      # "" and no parent the current path is empty: the root.
      first = names.pop(0) if names else ""
      stack.enter_context(keras.name_scope(first, override_parent=""))
    for name in names:
      stack.enter_context(keras.name_scope(name))
    yield


def build(layer, input_shape=None, path=""):
  """Builds `layer` so that its variables are `<path>/<layer.name>/...`.

  Args:
    layer: a `keras.layers.Layer` not built yet.
    input_shape: passed to `layer.build`.
    path: scopes between the current one and the layer's own (see `scope`).

  Returns:
    `layer`, built.
  """
  with scope(path):
    layer.build(input_shape)
  return layer


def variable(name, shape, initializer, path="", autocast=True):
  """A trainable float32 variable named `<path>/<name>`.

  Made as an attribute of a layer (in its `build` or constructor), the
  variable is tracked by that layer (its weights, saving, checkpoints) like
  one from `add_weight`, which always places it in the layer's own scope.

  Args:
    name: the variable's own name (the last part of its path).
    shape: tuple of ints.
    initializer: a Keras initializer or its name.
    path: scopes above the variable (see `scope`); "/" for the root.
    autocast: whether a mixed precision policy casts it to the compute
      dtype where a layer reads it.

  Returns:
    A `keras.Variable`.
  """
  with scope(path):
    return keras.Variable(initializer, shape=shape, name=name,
                          autocast=autocast)
