"""Fast in-graph text processing for BERT and ALBERT.

`FastBertTokenizer` tokenizes string tensors into WordPiece ids inside the
TensorFlow graph, with exactly the ids of `bert_tf.tokenization.FullTokenizer`
(with or without `split_on_punc`); `FastSentencePieceTokenizer` does the same
for ALBERT's SentencePiece tokenization (`FullTokenizer(...,
spm_model_file=...)`) and Model Garden's (`FullSentencePieceTokenizer`).
"""

from bert_tf.text.sentencepiece_tokenizer import FastSentencePieceTokenizer
from bert_tf.text.wordpiece import FastBertTokenizer
