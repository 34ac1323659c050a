"""The model fine-tuning trains: which blocks run and train, the head on top, its optimizer.

Cut from ``probe.finetune.training`` because this is the part with a shape (a ``Plan`` of
blocks, a module, parameter groups) that tests and benchmarks build on their own, without
the epoch loop, the data or the report around it.

The optimizer is AdamW with parameter groups built, nanoGPT-style, from the parameters that
require grad: body (``lr_body``) and head (``lr_head``), each split into matrices (weight
decay) and vectors (biases, norm gains: no decay).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from probe.errors import ProbeError
from probe.features.batching import DEFAULT_TOKEN_BUDGET
from probe.features.models import architecture
from probe.features.pooling import DEFAULT_POOL, POOLS, check_pool
from probe.finetune.prefix import run_blocks


@dataclass
class FinetuneConfig:
    unfreeze: int | str = 0  # trainable blocks below the head: 0 (head only), 1, 2, ... or "all"
    layer: int | None = None  # hidden-state layer the head reads; None = final (L)
    pool: str = DEFAULT_POOL
    lr_body: float = 1e-5
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    epochs: int = 3
    patience: int | None = None  # stop after this many epochs without a better val score
    batch_size: int = 16
    seed: int = 0
    max_length: int | None = None
    prefix_cache: bool = True
    prefix_dtype: str = "float16"
    init_head: str | None = "auto"  # auto, probe (LP-FT), zero (None too), or a head path
    forgetting_check: bool = True
    eval_token_budget: int = DEFAULT_TOKEN_BUDGET


@dataclass(frozen=True)
class Plan:
    """Which blocks run, which train, and where the head sits.

    Blocks ``first_trainable..layer-1`` train; ``0..first_trainable-1`` are the frozen prefix;
    ``layer..num_blocks-1`` are dropped. The final norm runs only for the final layer (layer
    numbering follows ``output_hidden_states``) and trains whenever a block does.
    """

    num_blocks: int
    layer: int
    first_trainable: int
    apply_final_norm: bool

    @property
    def unfrozen(self) -> int:
        return self.layer - self.first_trainable

    @property
    def final_norm_trainable(self) -> bool:
        return self.apply_final_norm and self.unfrozen > 0


def make_plan(num_blocks: int, has_final_norm: bool, unfreeze: int | str, layer) -> Plan:
    from probe.features.layers import resolve_layers

    head_layer = num_blocks if layer is None else resolve_layers(str(layer), num_blocks)[0]
    if isinstance(unfreeze, str) and unfreeze.strip().lower() == "all":
        count = head_layer
    else:
        try:
            count = int(unfreeze)
        except (TypeError, ValueError):
            raise ProbeError(
                f"--unfreeze must be a number of blocks or 'all', not '{unfreeze}'"
            ) from None
        if count < 0:
            raise ProbeError("--unfreeze must be 0 or more")
    if count > head_layer:
        where = "the model has" if head_layer == num_blocks else f"layer {head_layer} sits on"
        raise ProbeError(
            f"--unfreeze {count} is more blocks than {where} {head_layer}; "
            f"use 0..{head_layer} or 'all'"
        )
    return Plan(
        num_blocks, head_layer, head_layer - count, has_final_norm and head_layer == num_blocks
    )


class FinetuneClassifier(nn.Module):
    """Backbone slice + pool + linear head: (B, T) token ids -> (B, C) logits."""

    def __init__(self, model: nn.Module, plan: Plan, pool: str, num_classes: int):
        super().__init__()
        check_pool(pool)
        self.backbone = model
        self.plan = plan
        self.pool = pool
        hidden_size = architecture.base_model(model).config.hidden_size
        self.head = nn.Linear(hidden_size, num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def trainable_body_modules(self) -> list[nn.Module]:
        blocks = architecture.transformer_blocks(self.backbone)
        modules = list(blocks[self.plan.first_trainable : self.plan.layer])
        if self.plan.final_norm_trainable:
            modules.append(architecture.final_norm(self.backbone))
        return modules

    def freeze(self) -> None:
        """Everything off, then the trainable blocks (+ final norm) and the head back on."""
        for param in self.backbone.parameters():
            param.requires_grad_(False)
        for module in self.trainable_body_modules():
            module.requires_grad_(True)
        self.head.requires_grad_(True)

    def train_mode(self) -> None:
        """Dropout in the trainable blocks only: frozen parts must match their stored prefix."""
        self.eval()
        for module in self.trainable_body_modules():
            module.train()
        self.head.train()

    def forward(self, input_ids, attention_mask, start_hidden: torch.Tensor | None = None):
        plan = self.plan
        if start_hidden is None and plan.first_trainable > 0:
            with torch.no_grad():  # no prefix cache: the frozen blocks, recomputed every time
                start_hidden = run_blocks(
                    self.backbone, input_ids, attention_mask, 0, plan.first_trainable
                )
        first = plan.first_trainable if start_hidden is not None else 0
        hidden = run_blocks(
            self.backbone,
            input_ids,
            attention_mask,
            first,
            plan.layer,
            start_hidden,
            plan.apply_final_norm,
        )  # (B, T, D)
        pooled = POOLS[self.pool](hidden, attention_mask)  # (B, T, D) -> (B, D)
        return self.head(pooled.to(self.head.weight.dtype))  # (B, D) -> (B, C)


def param_groups(classifier: FinetuneClassifier, config: FinetuneConfig) -> list[dict]:
    """AdamW groups from the parameters that require grad: body/head x decay/no decay."""
    head_ids = {id(p) for p in classifier.head.parameters()}
    groups = {
        ("body", True): [],
        ("body", False): [],
        ("head", True): [],
        ("head", False): [],
    }
    for param in classifier.parameters():
        if param.requires_grad:
            part = "head" if id(param) in head_ids else "body"
            groups[(part, param.dim() >= 2)].append(param)
    lr = {"body": config.lr_body, "head": config.lr_head}
    return [
        {
            "name": f"{part}_{'decay' if decay else 'no_decay'}",
            "params": params,
            "lr": lr[part],
            "weight_decay": config.weight_decay if decay else 0.0,
        }
        for (part, decay), params in groups.items()
        if params
    ]


def adamw(groups: list[dict], lr: float) -> torch.optim.AdamW:
    """AdamW, fused where torch has the kernel for these parameters (about 5% of an N = 1
    epoch on CPU is the optimizer step: benchmarks/results/finetune_prefix_*)."""
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
