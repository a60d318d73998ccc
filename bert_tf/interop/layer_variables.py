"""Original names <-> the variables of another library's Keras layers.

keras-hub's `BertBackbone` / `AlbertBackbone` and Model Garden's encoders are
Keras models whose layers hold the same numbers as the original checkpoint,
in layouts that differ from it only by a reshape: the attention projections
are `EinsumDense` layers with query/key/value kernels [hidden, heads,
head_dim] and biases [heads, head_dim] (the original [hidden, hidden] and
[hidden]) and an output kernel [heads, head_dim, hidden] (the original
[hidden, hidden]). Since the original splits heads by a row-major reshape of
the last axis, each layout is a plain `np.reshape` of the other.

A format module maps each original name to the layer that holds it
(`block_layers` for the Transformer blocks, `layer_variables` for the
variables), then copies tensors in (`assign_variables`) or out
(`read_variables`).
"""

import numpy as np

from bert_tf.interop.weights import block_scopes
from bert_tf.interop.weights import check_shapes
from bert_tf.interop.weights import expected_shapes


def _short_name(variable):
  """The last component of a Keras 3 or tf_keras variable name ("kernel")."""
  return variable.name.split("/")[-1].split(":")[0]


def block_layers(config, blocks, attribute_paths):
  """The layers of a library's Transformer blocks, by original scope.

  Args:
    config: `BertConfig` of the encoder.
    blocks: the library's block layers, one per stored block in
      `block_scopes(config)` order.
    attribute_paths: dict block role (see `weights.BERT_BLOCK_NAMES`) ->
      tuple of attribute names leading from a block to the layer of that
      role, e.g. ("_self_attention_layer", "_query_dense").

  Returns:
    dict original scope (e.g. "bert/encoder/layer_0/attention/self/query")
    -> layer.
  """
  layers = {}
  for scope, block in zip(block_scopes(config), blocks):
    for role, attributes in attribute_paths.items():
      layer = block
      for attribute in attributes:
        layer = getattr(layer, attribute)
      layers[scope[role]] = layer
  return layers


def layer_variables(layers):
  """The variables of layers, by original name.

  Args:
    layers: dict original name -> Keras layer (Keras 3 or tf_keras). A layer
      with one weight (an embedding table) maps to that name; a layer with
      several (a Dense's kernel and bias, a LayerNormalization's gamma and
      beta) maps to an original scope, its weights to `<scope>/<short name>`.

  Returns:
    dict original name -> variable.

  Raises:
    ValueError: if a layer has no weights (it was never built).
  """
  variables = {}
  for name, layer in layers.items():
    if not layer.weights:
      raise ValueError("Layer %s (for %s) has no weights: build the model "
                       "before mapping it" % (layer.name, name))
    if len(layer.weights) == 1:
      variables[name] = layer.weights[0]
    else:
      for variable in layer.weights:
        variables["%s/%s" % (name, _short_name(variable))] = variable
  return variables


def assign_variables(variables, weights):
  """Assigns a `BertWeights`' tensors to variables, reshaping to their layouts.

  Args:
    variables: dict original name -> variable (see `layer_variables`).
    weights: `BertWeights` holding every name of `variables`.

  Returns:
    The sorted names assigned.

  Raises:
    ValueError: naming missing tensors and shape mismatches (both shapes).
  """
  expected = expected_shapes(weights.config)
  check_shapes(weights.tensors, {n: expected[n] for n in variables},
               weights.source)
  for name, variable in variables.items():
    variable.assign(np.reshape(weights.tensors[name], variable.shape))
  return sorted(variables)


def read_variables(variables, config):
  """The values of variables in the original layouts.

  Args:
    variables: dict original name -> variable (see `layer_variables`).
    config: `BertConfig` of the model, for the original shapes.

  Returns:
    dict original name -> numpy array.
  """
  shapes = expected_shapes(config)
  return {name: np.reshape(np.asarray(variable.numpy()), shapes[name])
          for name, variable in variables.items()}
