"""Benchmark: one fine-tuning epoch through ``harness.finetune.finetune`` against a bare PyTorch loop.

Usage: ``python bench/trial.py [--repeats 3] [--layers 2] [--threads 2] [--batch-size 32]``.

Both sides train the same model (an OrcaModel built by ``harness.build_parts``, as
``run_trial`` builds it: the default MiniLM body cut to ``--layers`` layers, digits task,
default tokenisation and head), from the same initial weights, on the same data in the same batch order
(one ``torch.randperm`` from a generator seeded alike), with AdamW over the same two
parameter groups (embedder + head at ``finetune.lr``, body at ``finetune.body_lr``).

- harness: ``finetune(...)`` for one epoch — per step: device transfer (a no-op on the
  CPU), autocast context (a no-op on the CPU), loss finiteness check, step callback;
  per epoch: prediction on the whole validation split, validation loss and metric,
  a copy of the weights (the epoch is always the best so far), reload of the best weights.
- bare: the same steps with plain forward / loss / zero_grad / backward / step, then the
  same validation work written out by hand (eval-mode forward in batches of 256 under
  ``no_grad``, loss and accuracy) so that like is compared with like; the time of the
  training steps alone is printed too.

One warm-up run of each side is not timed; then the sides alternate ``--repeats`` times
(in ABBA order, so neither side always runs first). Prints the best and median time of
each side, by wall clock and by this process's CPU time (less disturbed by other
processes on a shared machine), the overhead ratio (target ≤ 1.05), and whether both
sides ended with bitwise-equal weights (the global RNG is reseeded before each side, so
dropout masks match). On a busy 2-core machine ``--threads 1`` gives steadier numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from harness import BodyConfig, FinetuneConfig, TrialConfig, build_parts
from harness.embedders import OrcaModel
from harness.finetune import finetune
from harness.metrics import get_metric
from harness.tasks import TaskData

State = dict[str, torch.Tensor]


def build(layers: int) -> tuple[OrcaModel, TaskData]:
    """Return the model (built by ``build_parts``, as ``run_trial`` builds it) and the digits task, seed 0."""
    parts = build_parts(TrialConfig(task="digits", seed=0, body=BodyConfig(layers=layers)), with_proxy=False)
    return parts.model, parts.task


def snapshot(model: torch.nn.Module) -> State:
    """Return a detached copy of the model's state."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


Timing = tuple[float, float]
"""(wall-clock seconds, CPU seconds of this process): CPU time suffers less from other processes' load."""


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(t0: Timing) -> Timing:
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


def run_harness(model: OrcaModel, task: TaskData, init: State, cfg: FinetuneConfig) -> Timing:
    """Return the time of one harness epoch (train + validation + model selection) from ``init``."""
    model.load_state_dict(init)
    torch.manual_seed(0)  # dropout masks
    gen = torch.Generator().manual_seed(0)
    t0 = _clock()
    finetune(model, task.x_train, task.y_train, task.x_val, task.y_val, cfg=cfg, loss_fn=F.cross_entropy,
             metric=get_metric("accuracy"), device=torch.device("cpu"), generator=gen,
             on_epoch=lambda e, s: None, on_step=lambda: None, decode=task.decode)
    return _since(t0)


def run_bare(model: OrcaModel, task: TaskData, init: State, cfg: FinetuneConfig) -> tuple[Timing, Timing]:
    """Return the times of a plain loop: (train + validation, the training steps alone)."""
    model.load_state_dict(init)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    fast = [p for m in (model.embedder, model.head) for p in m.parameters()]
    opt = torch.optim.AdamW([{"params": fast, "lr": cfg.lr}, {"params": list(model.body.parameters()),
                                                              "lr": cfg.body_lr}], weight_decay=cfg.weight_decay)
    x, y = task.x_train, task.y_train
    t0 = _clock()
    model.train()
    perm = torch.randperm(len(x), generator=gen)
    for i in range(0, len(x), cfg.batch_size):
        idx = perm[i:i + cfg.batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t_train = _since(t0)
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(task.x_val[i:i + 256]) for i in range(0, len(task.x_val), 256)])
    _ = float(F.cross_entropy(out, task.y_val)), float((out.argmax(1) == task.y_val).double().mean())
    model.train()
    return _since(t0), t_train


def main() -> None:
    """Time both loops and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, task = build(args.layers)
    init = snapshot(model)
    cfg = FinetuneConfig(epochs=1, batch_size=args.batch_size)
    print(f"digits: {len(task.x_train)} train / {len(task.x_val)} validation, batch {cfg.batch_size}, "
          f"{-(-len(task.x_train) // cfg.batch_size)} steps; MiniLM {args.layers} layers; "
          f"{torch.get_num_threads()} threads")

    run_harness(model, task, init, cfg)  # warm-up: allocator, oneDNN kernels, lazy imports
    harness_state = snapshot(model)
    run_bare(model, task, init, cfg)
    same = all(torch.equal(harness_state[k], v) for k, v in model.state_dict().items())
    harness_t: list[Timing] = []
    bare_t: list[Timing] = []
    train_t: list[Timing] = []
    for r in range(args.repeats):
        # ABBA order: whichever side runs second in a pair gets a warmer cache; alternate it.
        if r % 2 == 0:
            harness_t.append(run_harness(model, task, init, cfg))
        total, train = run_bare(model, task, init, cfg)
        bare_t.append(total)
        train_t.append(train)
        if r % 2 == 1:
            harness_t.append(run_harness(model, task, init, cfg))
    for k, clock in enumerate(("wall-clock", "CPU (process)")):
        h, b, t = (min(v[k] for v in times) for times in (harness_t, bare_t, train_t))
        hm, bm = (statistics.median(v[k] for v in times) for times in (harness_t, bare_t))
        print(f"{clock} seconds, best of {args.repeats} (median):")
        print(f"  harness finetune epoch (train + validation + selection): {h:.3f} ({hm:.3f})  "
              f"all: {', '.join(f'{v[k]:.3f}' for v in harness_t)}")
        print(f"  bare loop epoch (train + validation):                     {b:.3f} ({bm:.3f})  "
              f"all: {', '.join(f'{v[k]:.3f}' for v in bare_t)}")
        print(f"  bare training steps alone:                                {t:.3f}")
        print(f"  overhead ratio harness / bare: best {h / b:.3f}, median {hm / bm:.3f}  (target <= 1.05)")
    print(f"same final weights on both sides: {same}")


if __name__ == "__main__":
    main()
