"""Writes bert_tf/text/unicode_tables.npz, the precomputed Unicode tables.

Rerun after changing the character classes of `bert_tf.tokenization` or the
tables of `bert_tf.text.unicode_tables`, or to ship tables for another Python
Unicode version (the file holds one); `tests/test_fast_tokenizer.py` checks
that the file equals a fresh build.

Usage: PYTHONPATH=. python scripts/generate_unicode_tables.py
"""

from bert_tf.text import unicode_tables

if __name__ == "__main__":
  unicode_tables.save_tables(unicode_tables.TABLE_FILE)
  print("wrote", unicode_tables.TABLE_FILE)
