"""Train a character-level GPT (tritonflow.models.GPT2) on a local text, eagerly and compiled.

    python examples/char_gpt.py                        # both modes on tritonflow's own nn/ sources
    python examples/char_gpt.py --text book.txt --steps 600 --mode compiled

The text is any local file (default: the Python sources of tritonflow/nn, about 60 kB, so the
example needs nothing downloaded). Characters are the vocabulary; the last 10% of the text is
held out. Both modes start from the same weights and see the same batches, so their losses must
agree to rounding; compiled mode jits the whole training step (forward, backward, AdamW), and
then writes a sample with `model.generate` (top-k sampling through the compiled KV cache).
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tf  # noqa: E402
import tritonflow.nn.functional as F  # noqa: E402
from tritonflow.models import GPT2, GPT2Config  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_text(path: str | None) -> str:
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read()
    parts = []
    for name in sorted(glob.glob(os.path.join(REPO, "tritonflow", "nn", "*.py"))):
        with open(name, encoding="utf-8") as f:
            parts.append(f.read())
    return "\n".join(parts)


class CharData:
    """The text as int64 character codes, split 90/10, and random (batch, block) windows."""

    def __init__(self, text: str, block: int, seed: int) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        codes = np.array([self.index[c] for c in text], dtype=np.int64)
        cut = int(len(codes) * 0.9)
        self.train, self.val = codes[:cut], codes[cut:]
        self.block = block
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int, split: str = "train"):
        data = self.train if split == "train" else self.val
        starts = self.rng.integers(0, len(data) - self.block - 1, size)
        x = np.stack([data[s:s + self.block] for s in starts])
        y = np.stack([data[s + 1:s + self.block + 1] for s in starts])
        return tf.tensor(x), tf.tensor(y)

    def decode(self, codes) -> str:
        return "".join(self.chars[int(c)] for c in codes)

    def encode(self, text: str) -> np.ndarray:
        return np.array([self.index[c] for c in text if c in self.index], dtype=np.int64)


def make_model(vocab: int, block: int, seed: int) -> GPT2:
    tf.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_positions=2 * block, n_embd=64, n_layer=2, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2(config)


def loss_of(model, x, y):
    logits = model(x)
    return F.cross_entropy(tf.reshape(logits, (-1, logits.shape[-1])), tf.reshape(y, (-1,)))


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = loss_of(model, x, y)
    loss.backward()
    opt.step()
    return loss


def train(mode: str, text: str, steps: int = 300, batch: int = 16, block: int = 32, lr: float = 3e-3,
          seed: int = 0, progress: bool = True, backend: str | None = None) -> dict:
    """Train one model; returns the per-step losses, the held-out loss, the model and the data."""
    with one_blas_thread():
        return _train(mode, text, steps, batch, block, lr, seed, progress, backend)


def one_blas_thread():
    """The matrices are tiny: BLAS threads only add synchronisation (and stall on a busy machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _train(mode, text, steps, batch, block, lr, seed, progress, backend) -> dict:
    from tqdm import tqdm
    data = CharData(text, block, seed)
    model = make_model(len(data.chars), block, seed)
    opt = tf.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    step = tf.jit(train_step, backend=backend) if mode == "compiled" else train_step
    losses = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"char-gpt {mode}", disable=not progress, leave=False)
    for _ in bar:
        x, y = data.batch(batch)
        losses.append(float(step(model, opt, x, y)))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = time.perf_counter() - start
    model.eval()
    evaluate = tf.jit(loss_of, backend=backend) if mode == "compiled" else loss_of
    with tf.no_grad():
        val = float(np.mean([float(evaluate(model, *data.batch(batch, "val"))) for _ in range(8)]))
    return {"losses": losses, "val_loss": val, "seconds": seconds, "model": model, "data": data}


def sample(result: dict, prompt: str = "def ", tokens: int = 120, seed: int = 0, backend: str | None = None) -> str:
    data, model = result["data"], result["model"]
    tf.manual_seed(seed)
    ids = tf.tensor(data.encode(prompt)[None, :])
    room = model.max_positions - ids.shape[1]
    out = model.generate(ids, min(tokens, room), temperature=0.8, top_k=10, backend=backend)
    return data.decode(out[0].numpy())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", default=None, help="a local text file (default: tritonflow/nn/*.py)")
    parser.add_argument("--mode", choices=["eager", "compiled", "both"], default="both")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--backend", default=None, help="numpy or triton (default: numpy on CPU)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    text = load_text(args.text)
    modes = ["eager", "compiled"] if args.mode == "both" else [args.mode]
    results = {}
    for mode in modes:
        r = train(mode, text, args.steps, progress=not args.no_progress, backend=args.backend)
        results[mode] = r
        first, last = np.mean(r["losses"][:10]), np.mean(r["losses"][-10:])
        print(f"{mode:<8} loss {first:.3f} -> {last:.3f} (held out {r['val_loss']:.3f}), "
              f"{r['seconds'] / args.steps * 1000:.1f} ms/step", flush=True)
    if len(results) == 2:
        gap = np.max(np.abs(np.array(results["eager"]["losses"]) - np.array(results["compiled"]["losses"])))
        print(f"eager vs compiled: largest per-step loss difference {gap:.2e}")
    final = results[modes[-1]]
    print("sample:", repr(sample(final, backend=args.backend)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
