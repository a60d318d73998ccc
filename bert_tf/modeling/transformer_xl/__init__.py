"""Transformer-XL (kimiyoung/transformer-xl): config, layers and the model.

- `config`: `TransformerXLConfig`, the original flags of `train_gpu.py`.
- `layers`: the position math (relative encodings, `rel_shift`, the causal
  mask, the memory cache) and the layers, under the original scope names.
- `model`: `TransformerXL`, the language model with segment-level recurrence.

The names below are importable from this package as from the former
single module (`from bert_tf.modeling import transformer_xl`).
"""

from bert_tf.modeling.transformer_xl.config import INITS
from bert_tf.modeling.transformer_xl.config import RUN_KEYS
from bert_tf.modeling.transformer_xl.config import TransformerXLConfig
from bert_tf.modeling.transformer_xl.layers import AdaptiveEmbedding
from bert_tf.modeling.transformer_xl.layers import AdaptiveSoftmax
from bert_tf.modeling.transformer_xl.layers import cache_memory
from bert_tf.modeling.transformer_xl.layers import create_mask
from bert_tf.modeling.transformer_xl.layers import PositionwiseFF
from bert_tf.modeling.transformer_xl.layers import positional_embedding
from bert_tf.modeling.transformer_xl.layers import rel_shift
from bert_tf.modeling.transformer_xl.layers import relative_positional_encodings
from bert_tf.modeling.transformer_xl.layers import RelativeMultiHeadAttention
from bert_tf.modeling.transformer_xl.layers import TransformerXLLayer
from bert_tf.modeling.transformer_xl.model import TransformerXL
