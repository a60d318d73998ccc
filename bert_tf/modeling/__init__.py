"""The BERT model: config, layers, encoder and heads with the original names.

Importing this package registers every layer and model with Keras
serialization (package "bert_tf"), Transformer-XL's included, so that
`keras.models.load_model` reads their `.keras` files.
"""

from bert_tf.modeling import transformer_xl
from bert_tf.modeling.config import BertConfig
from bert_tf.modeling.encoder import BertModel
from bert_tf.modeling.layers import gelu
from bert_tf.modeling.layers import get_activation
from bert_tf.modeling.models import BertClassifier
from bert_tf.modeling.models import BertPretrainer
from bert_tf.modeling.models import BertSquad
from bert_tf.modeling.models import BertSquadV2
from bert_tf.modeling.regression import BertRegressor
