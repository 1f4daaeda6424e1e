"""``build_parts(config) -> TrialParts``: the task, body, embedder, head, model and proxy of a trial, built once.

``run_trial``, ``orca-ablate otdd`` and ``bench/trial.py`` all build a trial's parts
here, so that they build the same thing from the same config in the same RNG order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .bodies import Body, load_body
from .config import TrialConfig
from .embedders import Embedder, HeadSpec, OrcaModel, Tokenisation, make_head, tokenisation
from .errors import ConfigError
from .proxies import Proxy, ProxyRequest, get_proxy
from .tasks import TaskData, load_task

__all__ = ["TrialParts", "build_parts", "embedded_input", "output_tokenisation", "stage_splits"]


@dataclass(frozen=True)
class TrialParts:
    """What a trial is built from, before alignment and fine-tuning.

    ``model`` holds ``embedder``, ``body.model`` and ``head`` (the same modules, not
    copies): training the model trains them.
    """

    task: TaskData
    """The normalised splits; in pinned host memory when built for a CUDA device."""
    body: Body
    tokenisation: Tokenisation
    """Patch size and token grid of the embedder."""
    embedder: Embedder
    head: nn.Module
    model: OrcaModel
    """Embedder + body + head, on the device given to :func:`build_parts`."""
    proxy: Proxy | None
    """The proxy the embedder aligns to; None when built with ``with_proxy=False``."""
    init_copied: list[str]
    """What the embedder's initialisation copied from the body (``Embedder.init_from_body``)."""


def embedded_input(task: TaskData, body: Body) -> tuple[tuple[int, ...], int]:
    """Return the input shape the embedder patches and the default token budget, for ``task`` on ``body``.

    Flat bodies: the task's own shape and ``task.default_tokens``. Swin (hierarchical)
    bodies, as ORCA: 2D inputs resized to the body's ``image_size``² and its own patch
    grid, ``(image_size / patch_size)²`` tokens. Raises ConfigError for a 1D task on Swin.
    """
    if body.image_size is None or body.patch_size is None:
        return task.input_shape, task.default_tokens
    if len(task.input_shape) != 3:
        raise ConfigError(f"task {task.name!r} has 1D inputs {task.input_shape}, but a {body.model_type} body takes "
                          "images; use a text body (e.g. a local roberta-base folder) for 1D tasks")
    size = body.image_size
    return (task.input_shape[0], size, size), (size // body.patch_size) ** 2


def output_tokenisation(tok: Tokenisation, body: Body) -> Tokenisation:
    """Return the token grid of the body's output: ``tok`` itself, or Swin's after its patch merging."""
    if body.downsample == 1:
        return tok
    return Tokenisation(patch=tok.patch * body.downsample, grid=tuple(-(-g // body.downsample) for g in tok.grid))


def stage_splits(task: TaskData, device: torch.device) -> TaskData:
    """Return ``task`` with its split tensors in pinned host memory when ``device`` is CUDA (else unchanged).

    Pinned once here, contiguous slices (validation and test batches) copy to the
    GPU asynchronously; shuffled training batches are gathered and pinned per batch.
    """
    if device.type != "cuda":
        return task
    names = [f"{v}_{s}" for s in ("train", "val", "test") for v in ("x", "y")]
    return dataclasses.replace(task, **{n: getattr(task, n).pin_memory() for n in names})


def build_parts(config: TrialConfig, device: torch.device | None = None, *, with_proxy: bool = True) -> TrialParts:
    """Return the parts of the trial of ``config``: task, body, tokenisation, embedder, head, model, proxy.

    The global torch RNG is seeded with ``config.seed`` before the task loads and again
    before the embedder and head are made, so their initial weights depend on the seed
    only. ``device`` (None: the CPU) is where the model is moved and, for CUDA, makes the
    task's splits pinned. ``with_proxy=False`` skips the proxy (``proxy`` is None).
    Registry names are not checked here: call ``harness.validate_config`` first.
    Raises ConfigError when the embedder entry does not suit the body or makes more
    tokens than the body takes.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(config.seed)
    task = stage_splits(load_task(config.task, config.data, config.seed), device)
    body = load_body(config.body, config.seed)
    emb = config.embedder
    if emb.entry not in body.kind.entries:
        raise ConfigError(f"embedder.entry={emb.entry!r} does not suit a {body.modality} body "
                          f"({body.model_type}); expected one of {list(body.kind.entries)}")
    shape, default_tokens = embedded_input(task, body)
    tok = tokenisation(shape, emb.tokens or default_tokens, emb.patch)
    if tok.tokens > body.max_positions:
        raise ConfigError(f"the embedder makes {tok.tokens} tokens but the body takes at most "
                          f"{body.max_positions}; lower embedder.tokens or raise embedder.patch")
    # The embedder's (and head's) initial weights depend on the seed only, never on alignment settings.
    torch.manual_seed(config.seed)
    embedder = Embedder(task.input_shape, body.in_dim, tok, emb.entry,
                        resize=shape[1:] if shape != task.input_shape else None, positions=body.kind.positions)
    copied = embedder.init_from_body(body, emb.init == "pretrained")
    head = make_head(task.output, HeadSpec(body.dim, task.num_classes, output_tokenisation(tok, body), shape,
                                           task.target_shape))
    proxy = None
    if with_proxy:
        proxy = get_proxy(ProxyRequest(emb.proxy, emb.proxy_samples, emb.proxy_classes, emb.entry, config.seed,
                                       body.path, config.body.pretrained), body)
    # On the device from here on: the embedder aligns there, and the OTDD follows its features.
    model = OrcaModel(embedder, body, head=head).to(device)
    return TrialParts(task=task, body=body, tokenisation=tok, embedder=embedder, head=head, model=model,
                      proxy=proxy, init_copied=copied)
