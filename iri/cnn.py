"""A small CNN that H-Mix trains itself, standard or adversarially (ℓ2 PGD), saved as TorchScript
(pure, no Django; see iri.generation for why these modules live in the `iri` app).

So that a study can compare a standard and a robust model without any download: both are
trained here on an image set in seconds to minutes on a CPU. The network normalises its input
itself (input in [0, 1]) and exports the layers IRIs are made from as TorchScript methods:
"penultimate" (the pooled features before the classifier, with the final ReLU replaced by one
that passes gradients where it is inactive) and "forward" (the logits).
"""

# No `from __future__ import annotations`: TorchScript reads the methods' annotations as types.
import contextlib
import io
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from iri.generation import to_tensor

REGIMES: Final = ("standard", "robust")
DEFAULT_LAYER: Final = "penultimate"
LAYERS: Final = ("penultimate", "forward")


class SmallCNN(nn.Module):
    """Three 3×3 convolutions (widths w, 2w, 4w; the last two with stride 2), global average
    pooling and a linear classifier."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        n_classes: int,
        *,
        width: int = 16,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.25, 0.25, 0.25),
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, stride=2)
        self.conv3 = nn.Conv2d(2 * width, 4 * width, 3, padding=1, stride=2)
        self.fc = nn.Linear(4 * width, n_classes)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        # Normalisation inside the forward pass: IRIs are optimised in raw [0, 1] pixels.
        x = (x - self.mean) / self.std
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.conv3(x)  # before the final ReLU

    @torch.jit.export
    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        z = self._trunk(x)
        # The final ReLU's value with the identity's gradient: IRI optimisation can move units
        # that are inactive at the start (a plain ReLU would give them zero gradient forever).
        z = z + (F.relu(z) - z).detach()
        return z.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self._trunk(x)).mean(dim=(2, 3)))


@dataclass(frozen=True)
class TrainSettings:
    regime: str = "standard"
    epochs: int = 30
    batch_size: int = 32
    lr: float = 0.003
    width: int = 16
    # ℓ2 PGD (Madry et al. 2018) in [0, 1] pixels: radius ε, `pgd_steps` steps of
    # 2.5·ε/pgd_steps (their step-size rule).
    epsilon: float = 0.5
    pgd_steps: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r} (expected one of {REGIMES})")
        if self.epochs < 1 or self.batch_size < 1 or self.width < 1 or self.pgd_steps < 1:
            raise ValueError("epochs, batch_size, width and pgd_steps must be at least 1")
        if not (self.lr > 0 and self.epsilon > 0):
            raise ValueError("lr and epsilon must be positive")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    model: SmallCNN
    train_accuracy: float
    robust_accuracy: float  # under the same ℓ2 PGD attack, on the training images
    settings: TrainSettings
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def pgd_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """An ℓ2 PGD adversarial example within ‖δ‖₂ ≤ ε of x, kept in [0, 1], from a random start
    inside the ball."""
    step_size = 2.5 * epsilon / steps
    n = x.shape[0]
    delta = torch.randn(x.shape, generator=generator)
    delta = delta / delta.flatten(1).norm(dim=1).view(n, 1, 1, 1) * epsilon
    delta *= torch.rand((n, 1, 1, 1), generator=generator)
    adv = (x + delta).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), y)
        (grad,) = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            g = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(n, 1, 1, 1)
            delta = adv + step_size * g - x
            norms = delta.flatten(1).norm(dim=1).view(n, 1, 1, 1)
            delta = delta * torch.clamp(epsilon / norms.clamp_min(1e-12), max=1.0)
            adv = (x + delta).clamp(0, 1)
    return adv.detach()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def accuracy(model: nn.Module, images: npt.NDArray[Any], labels: npt.NDArray[Any]) -> float:
    """The share of (N, H, W, 3) images the model classifies as labelled."""
    model.eval()
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return _accuracy(model, to_tensor(images), y)


def train(
    images: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    *,
    n_classes: int,
    settings: TrainSettings,
    progress: Callable[[int, int], bool | None] | None = None,
) -> TrainResult:
    """Train a SmallCNN on (N, H, W, 3) images with integer labels; deterministic in the seed.

    "robust" trains on ℓ2 PGD examples only (Madry et al. 2018). The normalisation is the image
    set's per-channel mean and standard deviation. progress(epoch, epochs) may return True to
    stop (a cancelled job): the model as trained so far is returned.
    """
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    x = to_tensor(images)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError("need as many labels as images, and at least one image")
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in x.std(dim=(0, 2, 3)))
    model = SmallCNN(n_classes, width=settings.width, mean=mean, std=std)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    for epoch in range(settings.epochs):
        model.train()
        order = torch.randperm(x.shape[0], generator=generator)
        for begin in range(0, x.shape[0], settings.batch_size):
            index = order[begin : begin + settings.batch_size]
            xb, yb = x[index], y[index]
            # Horizontal flips: the demo shapes and most photographs are mirror-symmetric kinds.
            flip = torch.rand(xb.shape[0], generator=generator) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            if settings.regime == "robust":
                model.eval()
                xb = pgd_l2(
                    model,
                    xb,
                    yb,
                    epsilon=settings.epsilon,
                    steps=settings.pgd_steps,
                    generator=generator,
                )
                model.train()
            loss = F.cross_entropy(model(xb), yb)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if progress is not None and progress(epoch + 1, settings.epochs):
            break
    model.eval()
    adv = pgd_l2(
        model, x, y, epsilon=settings.epsilon, steps=settings.pgd_steps, generator=generator
    )
    return TrainResult(
        model=model,
        train_accuracy=_accuracy(model, x, y),
        robust_accuracy=_accuracy(model, adv, y),
        settings=settings,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
    )


@contextlib.contextmanager
def _jit_quiet() -> Iterator[None]:
    # torch 2.13 marks torch.jit deprecated in favour of torch.export; TorchScript stays the
    # format researchers upload and H-Mix stores (one file, loaded without running Python).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def to_torchscript(model: nn.Module) -> bytes:
    """The model scripted and serialised (a .pt file torch.jit.load reads back)."""
    model.eval()
    buffer = io.BytesIO()
    with _jit_quiet():
        torch.jit.save(torch.jit.script(model), buffer)
    return buffer.getvalue()


def load_torchscript(data: bytes) -> torch.jit.ScriptModule:
    """A TorchScript model from its bytes, on the CPU and in eval mode.

    torch.jit.load runs no Python from the file (TorchScript code only), but a crafted file can
    still be large or slow: only signed-in researchers upload models, within the upload limits.
    """
    try:
        with _jit_quiet():
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"not a TorchScript model file ({str(exc).splitlines()[0]})") from exc
    module.eval()
    return module


def check_layer(
    model: torch.jit.ScriptModule | nn.Module, *, layer: str, input_size: int
) -> tuple[int, ...]:
    """Run the layer on one mid-grey image of the input size; its output shape without the
    batch axis. ValueError naming the problem if the layer is missing or fails."""
    from iri.generation import layer_representation

    representation = layer_representation(model, layer)
    try:
        with torch.no_grad():
            out = representation(torch.full((1, 3, input_size, input_size), 0.5))
    except (RuntimeError, ValueError, TypeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"layer {layer!r} fails on a 3×{input_size}×{input_size} input: {message}"
        ) from exc
    if out.shape[0] != 1 or out.numel() == 0:
        raise ValueError(f"layer {layer!r} returned a tensor of shape {tuple(out.shape)}")
    return tuple(out.shape[1:])
