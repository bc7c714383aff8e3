"""Train a small character-level GPT data-parallel across processes with tritonflow.distributed.

    torchrun --nproc_per_node=2 examples/train_ddp.py                  # 2 CPU processes, gloo
    torchrun --nproc_per_node=2 examples/train_ddp.py --mode jit --zero # jitted step / sharded AdamW
    torchrun --nproc_per_node=8 examples/train_ddp.py --device cuda     # one GPU per process, NCCL
    python examples/train_ddp.py                                        # a world of one, no torchrun

Each process holds a replica of the model (nn.parallel.DistributedDataParallel: rank 0's weights
broadcast at wrap time, gradients averaged in buckets during the backward) and reads its own shard
of the data (utils.data.DistributedSampler, reshuffled every epoch). The text is the Zen of Python
(Python's `this` module: no download). Rank 0 shows a progress bar; at the end every rank's
parameters are compared (they must be identical) and rank 0 prints a sample.

Modes: `eager` runs the step op by op; `compile` runs tritonflow.compile(ddp_model) (its compiled
backward hands each bucket to the all-reduce as soon as it is computed); `jit` jits the whole step
(forward, backward, all-reduces and the AdamW update in one graph). `--zero` shards AdamW's state
across the ranks (distributed.optim.ZeroRedundancyOptimizer; not with --mode jit).
"""
from __future__ import annotations

import argparse
import codecs
import contextlib
import hashlib
import io
import os
import socket
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tf  # noqa: E402
import tritonflow.distributed as dist  # noqa: E402
import tritonflow.nn.functional as F  # noqa: E402
from tritonflow import environment, nn  # noqa: E402
from tritonflow.distributed.optim import ZeroRedundancyOptimizer, optimizer_state_bytes  # noqa: E402
from tritonflow.nn.parallel import DistributedDataParallel as DDP  # noqa: E402
from tritonflow.utils.data import DistributedSampler  # noqa: E402


def corpus() -> str:
    """The Zen of Python: `this` keeps it rot13-encoded and prints it when first imported."""
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # noqa: F401
    return codecs.decode(sys.modules["this"].s, "rot13")


class Block(nn.Module):
    """Pre-norm transformer block: causal self-attention, then a 4x GELU MLP, each with a residual."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True, causal=True)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, x):
        h = self.norm_attn(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab: int, context: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx):
        x = self.token(idx) + self.position(tf.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def train_step(model, opt, x, y):
    opt.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss.backward()
    opt.step()
    return loss


def start_process_group(timeout: float) -> None:
    """Join torchrun's group, or make a world of one when started without torchrun."""
    if environment.launch_variables()["RANK"] is not None:
        dist.init_process_group(timeout=timeout)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group(init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1, timeout=timeout)


def parameter_digest(model) -> str:
    digest = hashlib.sha256()
    for _, p in sorted(model.named_parameters()):
        digest.update(np.ascontiguousarray(p.detach().cpu().numpy()).tobytes())
    return digest.hexdigest()[:16]


def sample(model, stoi: dict, itos: list, context: int, device: str, prompt: str = "Beautiful", length: int = 80):
    idx = [stoi[c] for c in prompt]
    with tf.no_grad():
        for _ in range(length):
            window = tf.tensor(np.array([idx[-context:]]), device=device)
            idx.append(int(tf.argmax(model(window)[0, -1], -1).item()))
    return "".join(itos[i] for i in idx)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="optimizer steps")
    parser.add_argument("--batch", type=int, default=8, help="sequences per rank per step")
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--mode", choices=("eager", "compile", "jit"), default="eager")
    parser.add_argument("--zero", action="store_true", help="shard AdamW's state across ranks (ZeRO stage 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a collective waits for the others")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.zero and args.mode == "jit":
        parser.error("--zero steps outside the graph: use --mode eager or compile with it")

    start_process_group(args.timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    text = corpus()
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    windows = np.arange(len(data) - args.context - 1)   # a training example starts at each position
    sampler = DistributedSampler(windows, seed=args.seed, drop_last=True)

    tf.manual_seed(args.seed + rank)   # ranks start differently on purpose: DDP broadcasts rank 0's weights
    model = TinyGPT(len(itos), args.context, args.width, args.layers, args.heads).to(args.device)
    ddp = DDP(model)
    if args.zero:
        opt = ZeroRedundancyOptimizer(ddp.parameters(), tf.optim.AdamW, lr=args.lr, weight_decay=0.01)
    else:
        opt = tf.optim.AdamW(ddp.parameters(), lr=args.lr, weight_decay=0.01)
    forward = tf.compile(ddp) if args.mode == "compile" else ddp
    step = tf.jit(train_step) if args.mode == "jit" else train_step

    from tqdm import tqdm
    bar = tqdm(total=args.steps, disable=rank != 0 or args.no_progress, desc=f"{world} x {args.mode}", unit="step")
    done, epoch, loss, started = 0, 0, None, time.perf_counter()
    while done < args.steps:
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        for first in range(0, len(order) - args.batch + 1, args.batch):
            starts = order[first:first + args.batch, None] + np.arange(args.context + 1)
            chunk = data[starts]
            x = tf.tensor(chunk[:, :-1], device=args.device)
            y = tf.tensor(chunk[:, 1:], device=args.device)
            loss = float(step(forward, opt, x, y))
            done += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", epoch=epoch)
            if done == args.steps:
                break
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - started

    digests: list = [None] * world
    dist.all_gather_object(digests, parameter_digest(model))
    state_bytes: list = [None] * world   # the optimizer state each rank keeps (a shard of it with --zero)
    dist.all_gather_object(state_bytes, opt.state_bytes() if args.zero else optimizer_state_bytes(opt))
    if rank == 0:
        tokens = args.steps * args.batch * args.context * world
        print(f"{world} rank(s), {args.mode}{' + ZeRO-1' if args.zero else ''}: {args.steps} steps, final loss "
              f"{loss:.3f}, {tokens / seconds:,.0f} tokens/s")
        same = len(set(digests)) == 1
        print(f"parameters {'identical' if same else 'DIFFERENT'} on all {world} rank(s): {digests[0]}")
        print("optimizer state per rank:", ", ".join(f"{b / 1024:.1f} KiB" for b in state_bytes))
        print("sample:", repr(sample(model, stoi, itos, args.context, args.device)))
    dist.destroy_process_group()
    return 0 if len(set(digests)) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
