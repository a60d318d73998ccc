"""Fast in-graph text processing for BERT.

`FastBertTokenizer` tokenizes string tensors into WordPiece ids inside the
TensorFlow graph, with exactly the ids of `bert_tf.tokenization.FullTokenizer`.
"""

from bert_tf.text.wordpiece import FastBertTokenizer
