#!/usr/bin/env bash
# The main job, end to end on the data bundled in data/:
#   vocabulary -> pretraining data -> pretrain -> fine-tune -> export -> serve.
# Everything is written under work_dir/main_job/ (removed first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
W=work_dir/main_job
rm -rf "$W"
mkdir -p "$W"

echo "== 1. learn a WordPiece vocabulary from data/sample_text.txt"
$PY learn_vocab.py --input_file=data/sample_text.txt --vocab_file=$W/vocab.txt \
  --vocab_size=2000 --min_count=2

echo "== 2. a small BERT config"
cat > $W/bert_config.json <<JSON
{"vocab_size": $(wc -l < $W/vocab.txt), "hidden_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "intermediate_size": 256, "hidden_act": "gelu",
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
 "max_position_embeddings": 128, "type_vocab_size": 2, "initializer_range": 0.02}
JSON

echo "== 3. pretraining data (the original create_pretraining_data records)"
$PY create_pretraining_data.py --input_file=data/sample_text.txt \
  --output_file=$W/pretraining.tfrecord --vocab_file=$W/vocab.txt \
  --do_lower_case=True --max_seq_length=64 --max_predictions_per_seq=10 \
  --masked_lm_prob=0.15 --random_seed=12345 --dupe_factor=5

echo "== 4. pretrain (masked LM + next sentence), then evaluate"
$PY run_pretraining.py --bert_config_file=$W/bert_config.json \
  --input_file=$W/pretraining.tfrecord --output_dir=$W/pretrain \
  --do_train=True --do_eval=True --train_batch_size=16 --eval_batch_size=16 \
  --max_seq_length=64 --max_predictions_per_seq=10 --num_train_steps=200 \
  --num_warmup_steps=20 --learning_rate=1e-3 --save_checkpoints_steps=100 \
  --iterations_per_loop=50 --max_eval_steps=5 --log_steps=50
cat $W/pretrain/eval_results.txt

echo "== 5. fine-tune on data/sentence_pairs (MRPC layout), evaluate, predict, export"
$PY run_classifier.py --task_name=mrpc --data_dir=data/sentence_pairs \
  --vocab_file=$W/vocab.txt --bert_config_file=$W/bert_config.json \
  --init_checkpoint=$W/pretrain --output_dir=$W/classifier \
  --do_train=True --do_eval=True --do_predict=True --max_seq_length=64 \
  --train_batch_size=8 --eval_batch_size=8 --predict_batch_size=8 \
  --learning_rate=1e-4 --num_train_epochs=10 --log_steps=10 \
  --export_dir=$W/export
cat $W/classifier/eval_results.txt
head -n 3 $W/classifier/test_results.tsv

echo "== 6. features of the pretrained encoder (extract_features.py)"
head -n 2 data/sample_text.txt > $W/input.txt
$PY extract_features.py --input_file=$W/input.txt --output_file=$W/features.jsonl \
  --vocab_file=$W/vocab.txt --bert_config_file=$W/bert_config.json \
  --init_checkpoint=$W/pretrain --layers=-1,-2 --max_seq_length=64 --batch_size=8

echo "== 7. serve raw text from the SavedModel, in a process without bert_tf"
$PY - "$W/export" <<'PYTHON'
import sys
import tensorflow as tf
import tensorflow_text  # noqa: F401 (registers the tokenizer ops)
serve_text = tf.saved_model.load(sys.argv[1]).signatures["serve_text"]
pairs = [("The rain had only ceased with the gray streaks of morning at Blazing Star,",
          "and the settlement awoke to a moral sense of cleanliness."),
         ("Gold, surely!", "Like most of his fellow gold-seekers, Cass was superstitious.")]
out = serve_text(text_a=tf.constant([a for a, _ in pairs]),
                 text_b=tf.constant([b for _, b in pairs]))
for (a, b), probs in zip(pairs, out["probabilities"].numpy()):
  print("P(next)=%.3f  %s ||| %s" % (probs[1], a[:40], b[:40]))
assert not any(name.startswith("bert_tf") for name in sys.modules)
PYTHON
echo "== done: outputs in $W"
