"""Train an MLP and a small CNN on scikit-learn's bundled digits (8x8 images), eagerly and compiled.

    python examples/train_digits.py                      # both models, eager and compiled, on CPU
    python examples/train_digits.py --model cnn --mode compiled --device cuda
    python examples/train_digits.py --logdir runs/digits    # then: tensorboard --logdir runs/digits

The data ships with scikit-learn (1,797 images, no download). The split is fixed (25% test,
stratified, seed 0). Compiled mode jits the whole training step — forward, loss.backward(), the
AdamW update and the learning-rate schedule — plus the evaluation function; eager mode runs the
same Python code op by op. The step closes over the model, optimizer and scheduler, as one writes
it for torch.compile: jit reads their tensors at every call and writes the updates back, and the
whole run compiles the step once.
With --logdir, each run logs to TensorBoard (tritonflow.utils.tensorboard) in its own folder: the
loss and learning rate per epoch, parameter histograms, the test accuracy, and the compiled
prediction function's graph.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tritonflow as tf  # noqa: E402
from tritonflow import nn  # noqa: E402
import tritonflow.nn.functional as F  # noqa: E402

BATCH = 64


def load_split(seed: int = 0):
    """(x_train, y_train, x_test, y_test) as float32 images in [0, 1] of shape (n, 1, 8, 8) and int64 labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return x_train, y_train, x_test, y_test


def make_model(name: str) -> nn.Module:
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.1),
                             nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 4 x 4
                             nn.Flatten(), nn.Dropout(0.1), nn.Linear(512, 10))
    raise ValueError(f"unknown model {name!r} (mlp or cnn)")


def make_steps(model, opt, sched):
    """The training step and the prediction function, closing over the training state."""
    def train_step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.05)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    def predict(x):
        return tf.argmax(model(x), -1)
    return train_step, predict


def train(model_name: str, mode: str = "eager", epochs: int = 30, device: str = "cpu", backend: str | None = None,
          seed: int = 0, progress: bool = True, lr: float = 3e-3, log_dir: str | None = None) -> dict:
    """Train one model; returns {"losses": per-epoch mean loss, "accuracy": test accuracy, "seconds": ...}.
    With `log_dir`, also writes TensorBoard events there."""
    try:
        # The matrices here are tiny: BLAS threads only add synchronisation (and stall on a busy machine).
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1)
    except ImportError:
        limits = None
    try:
        return _train(model_name, mode, epochs, device, backend, seed, progress, lr, log_dir)
    finally:
        if limits is not None:
            limits.restore_original_limits()


def _train(model_name, mode, epochs, device, backend, seed, progress, lr, log_dir) -> dict:
    from tqdm import tqdm
    x_train, y_train, x_test, y_test = load_split()
    tf.manual_seed(seed)
    model = make_model(model_name).to(device)
    opt = tf.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = len(x_train) // BATCH            # drop the last partial batch: one shape, one compile
    sched = tf.optim.lr_scheduler.CosineWarmupLR(opt, warmup_steps=min(steps_per_epoch, epochs * steps_per_epoch // 10),
                                                 total_steps=epochs * steps_per_epoch)
    train_step, predict = make_steps(model, opt, sched)
    step = tf.jit(train_step, backend=backend) if mode == "compiled" else train_step
    infer = tf.jit(predict, backend=backend) if mode == "compiled" else predict
    rng = np.random.default_rng(seed)
    writer = None
    if log_dir is not None:
        from tritonflow.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(log_dir)
        writer.add_text("run", f"{model_name} {mode} on {device}: {epochs} epochs, batch {BATCH}, AdamW lr {lr}")
    losses = []
    start = time.perf_counter()
    bar = tqdm(range(epochs), desc=f"{model_name} {mode}", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        order = rng.permutation(len(x_train))
        total = tf.zeros((), device=device)
        for b in range(steps_per_epoch):
            idx = order[b * BATCH:(b + 1) * BATCH]
            x = tf.tensor(x_train[idx], device=device)
            y = tf.tensor(y_train[idx], device=device)
            total = total + step(x, y).detach()
        losses.append(float(total) / steps_per_epoch)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if writer is not None:
            epoch = len(losses)
            writer.add_scalar("loss/train", losses[-1], epoch)
            writer.add_scalar("lr", opt.param_groups[0]["lr"], epoch)
            for name, p in model.named_parameters():
                writer.add_histogram(f"params/{name}", p, epoch)
    model.eval()
    with tf.no_grad():
        predicted = infer(tf.tensor(x_test, device=device)).numpy()
    seconds = time.perf_counter() - start
    accuracy = float((predicted == y_test).mean())
    if writer is not None:
        writer.add_scalar("accuracy/test", accuracy, len(losses))
        with tf.no_grad():
            writer.add_graph(infer if mode == "compiled" else tf.jit(predict, backend=backend),
                             (tf.tensor(x_test[:BATCH], device=device),))
        writer.close()
    compiles = step.cache_info().misses if mode == "compiled" else 0
    return {"losses": losses, "accuracy": accuracy, "seconds": seconds, "test_size": len(y_test),
            "step_compiles": compiles}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    parser.add_argument("--mode", choices=["eager", "compiled", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--backend", default=None, help="numpy or triton (default: numpy on CPU, triton on CUDA)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--logdir", default=None, help="write TensorBoard events under this folder, one run each")
    args = parser.parse_args(argv)
    models = ["mlp", "cnn"] if args.model == "both" else [args.model]
    modes = ["eager", "compiled"] if args.mode == "both" else [args.mode]
    targets = {"mlp": 0.97, "cnn": 0.98}
    lines, ok = [], True
    for name in models:
        for mode in modes:
            log_dir = os.path.join(args.logdir, f"{name}_{mode}") if args.logdir else None
            r = train(name, mode, args.epochs, args.device, args.backend, progress=not args.no_progress,
                      log_dir=log_dir)
            passed = r["accuracy"] >= targets[name]
            ok &= passed
            lines.append(f"{name:>3} {mode:<8} test accuracy {r['accuracy'] * 100:6.2f}% "
                         f"(target {targets[name] * 100:.0f}%{'' if passed else ', MISSED'}), final loss "
                         f"{r['losses'][-1]:.4f}, {r['seconds']:.1f} s")
            print(lines[-1], flush=True)
    print(f"summary: {'all targets met' if ok else 'some targets missed'} on {args.device} — " +
          "; ".join(line.split(' (')[0].replace('test accuracy ', '') for line in lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
