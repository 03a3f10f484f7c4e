"""Representation inversion: IRIs ("identically represented inputs") of a model (pure, no Django).

Why here: `iri` is the app that turns a model into IRI stimuli. This module and `iri.cnn` are its
model-side maths and import PyTorch; they never touch the ORM (house style 12), so a heavy
worker host needs only them and the app's services around them. Nothing in H-Mix imports them
unless a generation or a training is asked for, so the site runs without PyTorch
(`iri.services.torch_require` says what is missing).

The method (Nanda et al., the IRI surveys; interfaces E and F): an IRI x′ approximately
minimises

    L(x) = ‖f(x) − f(x_t)‖₂ / ‖f(x_t)‖₂ + λ·R(x)

where f is the model's representation at a chosen layer, x_t the target and R a regulariser.
x lives in raw pixel space [0, 1] (any normalisation is inside the model's forward pass).
Each step moves every image a fixed ℓ2 distance η along its negative gradient, then clips to
[0, 1]; no momentum. The iterate with the lowest loss is kept (the start counts as one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

Start = Literal["noise", "light-noise", "white", "black", "image"]
Regulariser = Literal["none", "tv-norm", "transform", "tv-norm+transform"]

STARTS: Final[tuple[str, ...]] = ("noise", "light-noise", "white", "black", "image")
REGULARISERS: Final[tuple[str, ...]] = ("none", "tv-norm", "transform", "tv-norm+transform")
# The "light noise": 0.01 × a standard normal, in [0, 1] pixel units.
LIGHT_NOISE_SCALE: Final = 0.01
# Mahendran & Vedaldi (2015), "Understanding deep image representations by inverting them",
# eq. 3: the α-norm of the image around mid-grey with α = 6 keeps pixels in range.
NORM_ALPHA: Final = 6.0
# Transformation robustness (Olah et al. 2017, "Feature visualization"): the ranges.
SCALE_RANGE: Final = (0.9, 1.1)
ROTATION_DEG: Final = 10.0
JITTER_PX: Final = 2

# A representation: images (N, 3, H, W) in [0, 1] → features (N, ...).
Representation = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], bool | None]


@dataclass(frozen=True)
class GenerationSettings:
    """Every setting of one run; recorded with each IRI it makes."""

    steps: int = 5000
    eta: float = 1.0
    start: str = "noise"
    regulariser: str = "none"
    # λ of L(x); ignored when regulariser == "none".
    lam: float = 0.05
    # R(x) = tv_weight·TV(x) + norm_weight·‖x − ½‖_α for the "tv-norm" regularisers.
    tv_weight: float = 1.0
    norm_weight: float = 1.0
    jitter_px: int = JITTER_PX
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 0:
            problems.append(f"steps must be 0 or more, got {self.steps}")
        if not (math.isfinite(self.eta) and self.eta > 0):
            problems.append(f"eta must be a positive number, got {self.eta}")
        if self.start not in STARTS:
            problems.append(f"unknown start {self.start!r} (expected one of {', '.join(STARTS)})")
        if self.regulariser not in REGULARISERS:
            problems.append(
                f"unknown regulariser {self.regulariser!r} "
                f"(expected one of {', '.join(REGULARISERS)})"
            )
        for name in ("lam", "tv_weight", "norm_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a number ≥ 0, got {value}")
        if self.jitter_px < 0:
            problems.append(f"jitter_px must be 0 or more, got {self.jitter_px}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def uses_tv_norm(self) -> bool:
        return self.regulariser in ("tv-norm", "tv-norm+transform")

    @property
    def uses_transform(self) -> bool:
        return self.regulariser in ("transform", "tv-norm+transform")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerationResult:
    """IRIs of one run, in the order of the targets.

    images: (N, H, W, 3) float32 in [0, 1], the kept (lowest-loss) iterate of each target.
    start: (N, H, W, 3) the start of each (the shared noise image N times for "noise").
    loss: L at the kept iterate; distance: its ‖f(x) − f(x_t)‖₂ / ‖f(x_t)‖₂ without R or any
    transformation; start_distance: the same for the start; best_step: the step whose
    iterate was kept (0 = the start itself).
    """

    images: npt.NDArray[np.float32]
    start: npt.NDArray[np.float32]
    loss: npt.NDArray[np.float64]
    distance: npt.NDArray[np.float64]
    start_distance: npt.NDArray[np.float64]
    best_step: npt.NDArray[np.int64]
    steps_run: int
    settings: GenerationSettings
    history: list[npt.NDArray[np.float64]] = field(default_factory=list)


# --- images in and out ------------------------------------------------------------------------


def to_tensor(images: npt.NDArray[Any]) -> torch.Tensor:
    """(N, H, W, 3) uint8 (0–255) or float (0–1) → (N, 3, H, W) float32 in [0, 1]."""
    array = np.asarray(images)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {array.shape}")
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor.permute(0, 3, 1, 2).clamp(0.0, 1.0).contiguous()


def to_numpy(images: torch.Tensor) -> npt.NDArray[np.float32]:
    return images.detach().permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)


def to_uint8(images: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def shared_noise(*, seed: int, size: int) -> torch.Tensor:
    """The run's one standard-normal image (3, size, size), the same for every target.

    Drawn from its own generator, so it depends on the seed alone. Pixels outside [0, 1] are
    clipped when it is used as a start: the optimisation lives in [0, 1], and the start shown
    to participants is that clipped image.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((3, size, size), generator=generator)


def start_images(
    settings: GenerationSettings,
    *,
    n: int,
    size: int,
    image: npt.NDArray[Any] | None = None,
) -> torch.Tensor:
    """The start x_0 of every target, (n, 3, size, size) in [0, 1]."""
    kind = settings.start
    if kind == "noise":
        x0 = shared_noise(seed=settings.seed, size=size).expand(n, -1, -1, -1)
    elif kind == "light-noise":
        generator = torch.Generator().manual_seed(settings.seed)
        x0 = LIGHT_NOISE_SCALE * torch.randn((n, 3, size, size), generator=generator)
    elif kind == "white":
        x0 = torch.ones((n, 3, size, size))
    elif kind == "black":
        x0 = torch.zeros((n, 3, size, size))
    else:
        if image is None:
            raise ValueError("the 'image' start needs a start image")
        x0 = to_tensor(np.asarray(image)[None]).expand(n, -1, -1, -1)
        if x0.shape[-2:] != (size, size):
            raise ValueError(f"the start image must be {size}×{size}, got {tuple(x0.shape[-2:])}")
    return x0.clamp(0.0, 1.0).contiguous()


# --- the loss ---------------------------------------------------------------------------------


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image: mean |horizontal| + mean |vertical| differences."""
    dh = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    dv = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    return dh + dv


def image_norm(x: torch.Tensor, alpha: float = NORM_ALPHA) -> torch.Tensor:
    """(mean |x − ½|^α)^(1/α) per image: large when pixels sit at the ends of the range."""
    return (x - 0.5).abs().pow(alpha).flatten(1).mean(1).pow(1.0 / alpha)


def random_transform(
    x: torch.Tensor, *, generator: torch.Generator, jitter_px: int = JITTER_PX
) -> torch.Tensor:
    """A random jitter (±jitter_px), scale (0.9–1.1) and rotation (±10°) of each image,
    differentiable (one affine resampling, edge pixels repeated). Used inside the loss only:
    the optimised image itself is never transformed."""
    n, _, h, w = x.shape
    u = torch.rand((n, 4), generator=generator, dtype=x.dtype)
    scale = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * u[:, 0]
    angle = torch.deg2rad((2 * u[:, 1] - 1) * ROTATION_DEG)
    # affine_grid works in [-1, 1] coordinates: a shift of k pixels is 2k / size.
    shift_x = (2 * u[:, 2] - 1) * jitter_px * 2 / w
    shift_y = (2 * u[:, 3] - 1) * jitter_px * 2 / h
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def representation_distance(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖f(x) − f(x_t)‖₂ / ‖f(x_t)‖₂ per image (the first term of L)."""
    diff = (features - target).flatten(1).norm(dim=1)
    return diff / target.flatten(1).norm(dim=1).clamp_min(1e-12)


def regulariser_value(x: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
    if not settings.uses_tv_norm:
        return torch.zeros(x.shape[0], dtype=x.dtype)
    return settings.tv_weight * total_variation(x) + settings.norm_weight * image_norm(x)


# --- the optimisation -------------------------------------------------------------------------


def generate(
    representation: Representation,
    targets: npt.NDArray[Any],
    settings: GenerationSettings,
    *,
    start_image: npt.NDArray[Any] | None = None,
    progress: Progress | None = None,
    progress_every: int = 50,
    keep_history: bool = False,
) -> GenerationResult:
    """IRIs of every target (N, H, W, 3) under `representation` (a model's layer, in eval mode).

    All targets are optimised together as one batch, but each image has its own loss, its own
    normalised step and its own kept iterate, exactly as if run alone. Deterministic for a
    given seed: the start and the transformations draw from generators seeded with it.
    progress(step, steps) is called every progress_every steps; returning True stops the run
    early (a cancelled job), keeping the best iterate so far.
    """
    x_t = to_tensor(targets)
    n, _, h, w = x_t.shape
    if h != w:
        raise ValueError(f"targets must be square, got {h}×{w}")
    x = start_images(settings, n=n, size=h, image=start_image)
    x0 = x.clone()
    transform_rng = torch.Generator().manual_seed(settings.seed + 1)
    lam = settings.lam if settings.regulariser != "none" else 0.0

    with torch.no_grad():
        f_t = representation(x_t).detach()
        start_distance = representation_distance(representation(x0), f_t)

    def loss_of(images: torch.Tensor) -> torch.Tensor:
        seen = images
        if settings.uses_transform:
            seen = random_transform(images, generator=transform_rng, jitter_px=settings.jitter_px)
        loss = representation_distance(representation(seen), f_t)
        if lam:
            loss = loss + lam * regulariser_value(images, settings)
        return loss

    best = x.clone()
    best_loss = torch.full((n,), math.inf, dtype=torch.float64)
    best_step = torch.zeros(n, dtype=torch.int64)
    history: list[npt.NDArray[np.float64]] = []
    steps_run = settings.steps
    for step in range(settings.steps + 1):
        x.requires_grad_(True)
        loss = loss_of(x)
        values = loss.detach().double()
        better = values < best_loss
        if better.any():
            best[better] = x.detach()[better]
            best_loss = torch.where(better, values, best_loss)
            best_step[better] = step
        if keep_history:
            history.append(values.numpy().copy())
        if step == settings.steps:
            break  # the last iterate is evaluated, not stepped from
        (grad,) = torch.autograd.grad(loss.sum(), x)
        with torch.no_grad():
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(n, 1, 1, 1)
            x = (x.detach() - settings.eta * grad / norm).clamp(0.0, 1.0)
        stop = (
            progress is not None
            and (step + 1) % progress_every == 0
            and progress(step + 1, settings.steps)
        )
        if stop:
            steps_run = step + 1
            break

    with torch.no_grad():
        distance = representation_distance(representation(best), f_t)
    return GenerationResult(
        images=to_numpy(best),
        start=to_numpy(x0),
        loss=best_loss.numpy(),
        distance=distance.double().numpy(),
        start_distance=start_distance.double().numpy(),
        best_step=best_step.numpy(),
        steps_run=steps_run,
        settings=settings,
        history=history,
    )


def layer_representation(model: torch.nn.Module, layer: str) -> Representation:
    """f for a model and a layer name: the model's method of that name ("forward" for its
    output). TorchScript models expose other layers as exported methods; H-Mix's own CNNs
    export "penultimate" (see iri.cnn). The model is put in eval mode."""
    model.eval()
    method = getattr(model, layer, None)
    if layer.startswith("_") or method is None or not callable(method):
        raise ValueError(f"the model has no layer (method) {layer!r}")

    def representation(x: torch.Tensor) -> torch.Tensor:
        out = method(x)
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"layer {layer!r} did not return a tensor")
        return out

    return representation


def run_seeds(
    representation: Representation,
    targets: npt.NDArray[Any],
    settings: GenerationSettings,
    seeds: Sequence[int],
    **kwargs: Any,
) -> list[GenerationResult]:
    """One run per seed (each with its own shared noise image)."""
    return [
        generate(representation, targets, _with_seed(settings, seed), **kwargs) for seed in seeds
    ]


def _with_seed(settings: GenerationSettings, seed: int) -> GenerationSettings:
    return GenerationSettings(**{**settings.as_dict(), "seed": seed})
