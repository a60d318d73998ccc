"""Pretraining data: text -> documents -> instances -> masked LM records.

The modules, each importing only those above it:

  randomness       the random sources: the original's exact draws
                   (`InstanceRandom`), cheaper NumPy ones
                   (`NumpyInstanceRandom`)
  batch_selection  selecting the masked positions of a batch of id rows at once
  masking          `MaskingStrategy` (token, whole word, n-gram) and the
                   80/10/10 replacement (`mask_groups`); `MASKING_STRATEGIES`
  span_masking     SpanBERT's spans, a scheme registered in `MASKING_STRATEGIES`
  sentence_tasks   `SentenceTask` (NSP, SOP, none); `SENTENCE_TASKS`
  instances        `InstanceOptions`, the original's loop over a document and
                   its `TrainingInstance`s
  batches          the parallel mode's instances, built and masked as id
                   matrices
  documents        reading text into documents of tokens
  pipeline         the program: `RunOptions` -> `create_pretraining_data`, the
                   faithful run and the worker processes
  beam_pipeline    the program as an Apache Beam pipeline (`--beam_runner`);
                   imported only when asked for (apache_beam is an extra),
                   so not below

The names below are the public surface: the entry points of the
`create_pretraining_data.py` script and the pieces a library caller (or a
test) combines.
"""

from bert_tf.data.pretraining.randomness import InstanceRandom
from bert_tf.data.pretraining.randomness import NumpyInstanceRandom
from bert_tf.data.pretraining.masking import MASKING_STRATEGIES
from bert_tf.data.pretraining.masking import MaskingStrategy
from bert_tf.data.pretraining.masking import NgramMasking
from bert_tf.data.pretraining.masking import TokenMasking
from bert_tf.data.pretraining.masking import WholeWordMasking
from bert_tf.data.pretraining.masking import create_masked_lm_predictions
from bert_tf.data.pretraining.masking import is_sentencepiece_start
from bert_tf.data.pretraining.masking import num_predictions
from bert_tf.data.pretraining.span_masking import SpanMasking
from bert_tf.data.pretraining.sentence_tasks import SENTENCE_TASKS
from bert_tf.data.pretraining.sentence_tasks import NextSentencePrediction
from bert_tf.data.pretraining.sentence_tasks import NoSentenceTask
from bert_tf.data.pretraining.sentence_tasks import SentenceOrderPrediction
from bert_tf.data.pretraining.sentence_tasks import SentenceTask
from bert_tf.data.pretraining.instances import InstanceOptions
from bert_tf.data.pretraining.instances import TrainingInstance
from bert_tf.data.pretraining.instances import create_instances_from_document
from bert_tf.data.pretraining.instances import create_training_instances
from bert_tf.data.pretraining.instances import instance_segments
from bert_tf.data.pretraining.instances import truncate_seq_pair_randomly
from bert_tf.data.pretraining.batches import InstanceBatcher
from bert_tf.data.pretraining.documents import PieceCachingTokenizer
from bert_tf.data.pretraining.documents import is_blank_after_preprocessing
from bert_tf.data.pretraining.documents import make_line_tokenizer
from bert_tf.data.pretraining.documents import read_documents
from bert_tf.data.pretraining.pipeline import RunOptions
from bert_tf.data.pretraining.pipeline import RunSummary
from bert_tf.data.pretraining.pipeline import create_pretraining_data
from bert_tf.data.pretraining.pipeline import plan_worker_units
