"""Generate text with a tiny Llama through the compiled KV cache: greedy, then sampled.

    python examples/llama_generate.py
    python examples/llama_generate.py --checkpoint path/to/llama --prompt-ids 1,15,27 --tokens 40

Without --checkpoint a tiny random Llama (grouped-query attention: 8 query heads sharing 2
key/value heads) is written as a Hugging Face checkpoint directory (config.json +
model.safetensors, transformers' names) and loaded back with `Llama.from_pretrained`, so the
whole path a real checkpoint takes runs. It prints the tokens, the compile counts of the
prefill and decoding-step graphs (one each: decoding never recompiles per token), and the time
per generated token against recomputing the whole sequence for every token.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tf  # noqa: E402
from tritonflow.models import Llama, LlamaConfig  # noqa: E402

TINY = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=2, max_position_embeddings=512, initializer_range=0.1)


def write_tiny_checkpoint(directory: str, seed: int = 0) -> str:
    """A random tiny Llama saved as transformers saves one (its names and config fields)."""
    from safetensors.numpy import save_file
    tf.manual_seed(seed)
    model = Llama(LlamaConfig(**TINY))
    names = model.name_map
    tensors = {names.hf_name(k): v.numpy() for k, v in model.state_dict().items()}
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(dict(TINY, model_type="llama", architectures=["LlamaForCausalLM"], torch_dtype="float32"), f)
    return directory


def recompute_greedy(model, ids, tokens: int):
    """The no-cache baseline: the full sequence through the model, eagerly, for every new token
    (benchmarks/generation_bench.py also times a compiled, padded version of it)."""
    with tf.no_grad():
        for _ in range(tokens):
            logits = model(ids)
            ids = tf.cat([ids, tf.reshape(tf.argmax(logits[:, -1], -1), (-1, 1))], 1)
    return ids


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a Llama checkpoint directory (default: a tiny random one)")
    parser.add_argument("--prompt-ids", default="1,42,7,99,3,250,18,64", help="comma-separated token ids")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--backend", default=None, help="numpy or triton (default: numpy on CPU)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        model = Llama.from_pretrained(args.checkpoint or write_tiny_checkpoint(scratch))
    ids = tf.tensor(np.array([[int(t) for t in args.prompt_ids.split(",")]], dtype=np.int64))

    start = time.perf_counter()
    greedy = model.generate(ids, args.tokens, do_sample=False, backend=args.backend)
    cached = (time.perf_counter() - start) / args.tokens
    print("greedy :", greedy[0].numpy().tolist())
    tf.manual_seed(0)
    sampled = model.generate(ids, args.tokens, temperature=0.9, top_k=40, top_p=0.95, backend=args.backend)
    print("sampled:", sampled[0].numpy().tolist())
    decoder = model.decoder(args.backend)
    print(f"compiles: prefill {decoder.prefill.cache_info().misses}, decoding step "
          f"{decoder.step.cache_info().misses} (per sampling setting), for {2 * args.tokens} tokens")

    start = time.perf_counter()
    baseline = recompute_greedy(model, ids, args.tokens)
    recomputed = (time.perf_counter() - start) / args.tokens
    same = bool((baseline.numpy() == greedy.numpy()).all())
    print(f"per token: {cached * 1000:.1f} ms with the KV cache (compiles included), {recomputed * 1000:.1f} ms "
          f"recomputing the sequence eagerly; same tokens: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
