#!/usr/bin/env bash
# The main job, end to end on the text bundled in data/: learn a WordPiece
# vocabulary, build a small BERT and its checkpoint, extract features.
# Everything is written under work_dir/main_job/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python
W=work_dir/main_job
mkdir -p "$W"

echo "== 1. learn a WordPiece vocabulary from data/sample_text.txt"
$PY learn_vocab.py --input_file=data/sample_text.txt --vocab_file=$W/vocab.txt \
  --vocab_size=2000 --min_count=2

echo "== 2. a small BERT config and its initial checkpoint (original names)"
cat > $W/bert_config.json <<JSON
{"vocab_size": $(wc -l < $W/vocab.txt), "hidden_size": 64, "num_hidden_layers": 2,
 "num_attention_heads": 4, "intermediate_size": 256, "hidden_act": "gelu",
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
 "max_position_embeddings": 128, "type_vocab_size": 2, "initializer_range": 0.02}
JSON
$PY - <<PYTHON
import keras
from bert_tf import checkpoints
from bert_tf.modeling import BertConfig, BertPretrainer
keras.utils.set_random_seed(12345)
model = BertPretrainer(BertConfig.from_json_file("$W/bert_config.json"))
print("wrote", checkpoints.save_checkpoint(model, "$W/init/bert_model.ckpt"))
PYTHON

echo "== 3. extract features of the first lines"
head -n 3 data/sample_text.txt > $W/input.txt
echo "The rain had only ceased ||| with the gray streaks of morning" >> $W/input.txt
$PY extract_features.py --input_file=$W/input.txt --output_file=$W/features.jsonl \
  --vocab_file=$W/vocab.txt --bert_config_file=$W/bert_config.json \
  --init_checkpoint=$W/init/bert_model.ckpt --layers=-1,-2 --max_seq_length=64 \
  --batch_size=8
$PY - <<PYTHON
import json
lines = [json.loads(l) for l in open("$W/features.jsonl")]
last = lines[-1]["features"]
print("features of %d lines; last line: %s" % (len(lines), " ".join(f["token"] for f in last)))
PYTHON
echo "== done: outputs in $W"
