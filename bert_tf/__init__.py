"""bert_tf: Google's original BERT in TensorFlow 2 / Keras 3, faithful to its numbers."""

__version__ = "0.1.0"
