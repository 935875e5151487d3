"""Training a discrete network from scratch (SGD + cosine) and evaluating it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 10  # training epochs from scratch
    batch_size: int = 64  # images per step
    lr: float = 0.05  # initial SGD learning rate (cosine-annealed to 0)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 3e-4  # SGD weight decay
    grad_clip: float = 5.0  # gradient-norm clip
    drop_path: float = 0.0  # drop-path probability, ramped linearly over training
    cutout: int = 0  # cutout square length on the training images (DARTS: 16); 0 = off
    auxiliary_weight: float = 0.0  # weight of the auxiliary head's loss (DARTS: 0.4); 0 = no head
    with_val: bool = False  # train on train + val (DARTS' final training; then no validation accuracy)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if self.cutout < 0 or self.auxiliary_weight < 0:
            raise ValueError(f"cutout and auxiliary_weight must be >= 0, got {self.cutout}, {self.auxiliary_weight}")


def accuracy_and_loss(net: nn.Module, data: DataLoader, device: str = "cpu") -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``net`` on ``data``."""
    net.eval()
    correct, loss, n = 0, 0.0, 0
    with torch.inference_mode():
        for x, y in data:
            x, y = x.to(device), y.to(device)
            logits = net(x)
            loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
    return correct / max(n, 1), loss / max(n, 1)


def train_network(
    net: nn.Module,
    train: DataLoader,
    settings: TrainSettings,
    device: str = "cpu",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    net.to(device)
    opt = torch.optim.SGD(
        net.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, settings.epochs)
    metrics: dict[str, float] = {}
    for epoch in range(settings.epochs):
        if hasattr(net, "set_drop_path"):
            net.set_drop_path(settings.drop_path * epoch / settings.epochs)
        net.train()
        correct, total_loss, n = 0, 0.0, 0
        for x, y in train:
            x, y = x.to(device), y.to(device)
            logits, aux = net.forward_with_aux(x) if settings.auxiliary_weight else (net(x), None)
            loss = nn.functional.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + settings.auxiliary_weight * nn.functional.cross_entropy(aux, y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
            opt.step()
            total_loss += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
        sched.step()
        metrics = {"epoch": epoch + 1, "train_loss": total_loss / n, "train_acc": correct / n}
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    return metrics
