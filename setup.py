"""Packaging for bert_tf: Google's original BERT in TensorFlow 2 / Keras 3."""

from setuptools import find_packages, setup

BEAM = ["apache-beam==2.78.*"]

setup(
    name="bert_tf",
    version="0.1.0",
    description=(
        "Google's original BERT (google-research/bert) reimplemented in "
        "TensorFlow 2 / Keras 3: same checkpoints, TFRecords, flags and numbers."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["bert_tf", "bert_tf.*"]),
    package_data={"bert_tf.text": ["unicode_tables.npz"]},
    py_modules=[  # the root scripts, each a console script below
        "create_pretraining_data", "run_pretraining", "run_classifier",
        "run_squad", "extract_features", "export_saved_model",
        "convert_checkpoint", "run_transformer_xl", "learn_vocab",
    ],
    install_requires=[
        "tensorflow~=2.20.0",
        "tensorflow-text~=2.20.0",
        "absl-py",
        "sentencepiece",
        "numpy",
    ],
    extras_require={
        "interop": ["keras-nlp==0.32.*", "tf-models-official==2.20.*",
                    "safetensors"],
        # create_pretraining_data.py --beam_runner. Beam 2.78 pins protobuf
        # < 7 (TensorFlow 2.20 takes >= 5.28), so pip picks protobuf 6.33;
        # bert_tf reads SentencePiece models without sentencepiece 0.2.3's
        # generated module, which needs the protobuf 7.36 runtime.
        "beam": BEAM,
        "test": ["pytest", "hypothesis"] + BEAM,
        # experiments/*/run.py draw their plots with it.
        "experiments": ["matplotlib"],
    },
    entry_points={
        "console_scripts": [
            "bert-create-pretraining-data=create_pretraining_data:run_main",
            "bert-run-pretraining=run_pretraining:run_main",
            "bert-run-classifier=run_classifier:run_main",
            "bert-run-squad=run_squad:run_main",
            "bert-extract-features=extract_features:run_main",
            "bert-export-saved-model=export_saved_model:run_main",
            "bert-convert-checkpoint=convert_checkpoint:run_main",
            "bert-run-transformer-xl=run_transformer_xl:run_main",
            "bert-learn-vocab=learn_vocab:run_main",
        ],
    },
)
