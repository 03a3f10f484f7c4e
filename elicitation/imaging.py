"""Base images, their importers, and mixup stimuli (pure: numpy, Pillow and stdlib only).

Services do the I/O around these functions (storage, database); nothing here touches Django so
the maths and the untrusted-file handling can be tested without a database.
"""

from __future__ import annotations

import colorsys
import io
import math
import pickle
import re
import stat
import struct
import unicodedata
import warnings
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

Pixels = npt.NDArray[np.uint8]

# 4096² RGB is 48 MiB decoded: generous for stimuli (CIFAR is 32²) yet far below what would let
# one upload exhaust a worker's memory.
DEFAULT_MAX_PIXELS: Final = 4096 * 4096
IMAGE_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
# Zip limits (the settings HMIX_MAX_ZIP_MEMBER_BYTES and HMIX_MAX_ZIP_TOTAL_BYTES default to
# these): what one member, and all members together, may inflate to.
DEFAULT_MAX_ZIP_MEMBER_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_ZIP_TOTAL_BYTES: Final = 512 * 1024 * 1024
# Members are inflated this many bytes at a time, so a lie in a size field costs at most one
# chunk more than the member's budget.
_ZIP_CHUNK: Final = 64 * 1024
# Only these decoders ever run on uploaded bytes: Pillow would otherwise sniff the content and
# could hand a file renamed to .png to e.g. the EPS plugin, which shells out to Ghostscript.
_PIL_FORMATS: Final = ("PNG", "JPEG", "BMP", "WEBP")

# Column widths of SourceImage.class_name / SourceImage.ref: refusing at import time names the
# offending file instead of failing later inside a database write.
MAX_CLASS_NAME_LENGTH: Final = 100
MAX_REF_LENGTH: Final = 200

# Conventions shared by every interface (docs/user-guide/interfaces.md#conventions): the
# standard λ grid for single-image tasks and the 11-step midpoint series indexed by an integer
# step.
STANDARD_LAMBDAS: Final = (0.1, 0.25, 0.5, 0.75, 0.9)
MIDPOINT_STEPS: Final = 11

CIFAR10_CLASSES: Final = (
    "Airplane",
    "Automobile",
    "Bird",
    "Cat",
    "Deer",
    "Dog",
    "Frog",
    "Horse",
    "Ship",
    "Truck",
)
_CIFAR_SIDE: Final = 32
_CIFAR_ROW_LENGTH: Final = 3 * _CIFAR_SIDE * _CIFAR_SIDE

# λ is a decimal on a grid; rounding it to 10 places keeps float noise such as 1 - 0.9 =
# 0.09999999999999998 or 0.6000000000000001 out of stimulus keys and labels.
_LAMBDA_DECIMALS: Final = 10


class ImageImportError(ValueError):
    """A researcher-provided image, folder, zip or CIFAR batch is unusable; says which and why."""


@dataclass(frozen=True)
class BaseImage:
    class_name: str
    # Stable id within its image set: CIFAR index, file stem or demo instance number.
    ref: str
    # HxWx3 uint8 RGB. Excluded from ==/hash: arrays have no truth value, and (class_name, ref)
    # already identifies the image within its set.
    pixels: Pixels = field(compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.class_name or not self.ref:
            raise ValueError("class_name and ref must be non-empty")
        _check_pixels(self.pixels)
        # A read-only view (no copy) makes "frozen" true for the pixels as well, without
        # touching the caller's array.
        view = self.pixels.view()
        view.flags.writeable = False
        object.__setattr__(self, "pixels", view)


def _check_pixels(pixels: object) -> None:
    if not isinstance(pixels, np.ndarray):
        raise ValueError(f"pixels must be a numpy array, got {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ValueError(f"pixels must be HxWx3 (RGB), got shape {pixels.shape}")


# ---------------------------------------------------------------------------------------------
# Demo generator
# ---------------------------------------------------------------------------------------------

# Sorted, capitalised single words: the same conventions as CIFAR-10 class names, so demo studies
# exercise exactly the code paths real ones do.
DEMO_CLASSES: Final = (
    "Circle",
    "Cross",
    "Diamond",
    "Heart",
    "Ring",
    "Square",
    "Star",
    "Triangle",
)

# Shapes are drawn at 4x and box-filtered down: every output pixel becomes the exact coverage-
# weighted average of 16 sub-pixels, i.e. clean anti-aliasing without the ringing (haloes) that
# a Lanczos kernel adds around hard edges.
_SUPERSAMPLE: Final = 4
_MIN_DEMO_SIZE: Final = 16


_Outline = list[tuple[float, float]]


def _regular_polygon(n: int, radius: float, start_deg: float) -> list[tuple[float, float]]:
    return [
        (
            radius * math.cos(math.radians(start_deg + 360.0 * k / n)),
            radius * math.sin(math.radians(start_deg + 360.0 * k / n)),
        )
        for k in range(n)
    ]


def _star_outline() -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    for k in range(10):
        # Inner radius 0.42 keeps the five arms thick enough to survive 32x32.
        radius = 1.0 if k % 2 == 0 else 0.42
        angle = math.radians(-90.0 + 36.0 * k)
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    return points


def _cross_outline() -> list[tuple[float, float]]:
    w, a = 0.32, 0.95  # half arm width, arm length
    return [
        (-w, -a),
        (w, -a),
        (w, -w),
        (a, -w),
        (a, w),
        (w, w),
        (w, a),
        (-w, a),
        (-w, w),
        (-a, w),
        (-a, -w),
        (-w, -w),
    ]


def _heart_outline() -> list[tuple[float, float]]:
    # The classic parametric heart (x = 16 sin³t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t),
    # y flipped for image coordinates and scaled to extent ≈ 1.
    points = []
    for k in range(96):
        t = 2.0 * math.pi * k / 96
        x = 16.0 * math.sin(t) ** 3
        y = 13.0 * math.cos(t) - 5.0 * math.cos(2 * t) - 2.0 * math.cos(3 * t) - math.cos(4 * t)
        points.append((x / 16.5, -(y + 2.5) / 16.5))
    return points


# Unit outlines (extent ≈ 1, y pointing down) as (filled, holes), plus the rotation jitter in
# degrees. Rotation stays small where a large one would turn one class into another
# (Square → Diamond, Cross → "X").
_SHAPES: Final[Mapping[str, tuple[list[_Outline], list[_Outline], float]]] = {
    "Circle": ([_regular_polygon(96, 0.85, 0.0)], [], 0.0),
    "Cross": ([_cross_outline()], [], 10.0),
    "Diamond": ([[(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]], [], 10.0),
    "Heart": ([_heart_outline()], [], 12.0),
    "Ring": ([_regular_polygon(96, 0.92, 0.0)], [_regular_polygon(96, 0.52, 0.0)], 0.0),
    "Square": ([_regular_polygon(4, 1.0, 45.0)], [], 10.0),
    "Star": ([_star_outline()], [], 12.0),
    "Triangle": ([_regular_polygon(3, 1.0, -90.0)], [], 12.0),
}


def _hsv(
    rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]
) -> npt.NDArray[np.float64]:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(*s), rng.uniform(*v))
    return np.array(rgb, dtype=np.float64) * 255.0


def _demo_background(rng: np.random.Generator, side: int) -> npt.NDArray[np.float64]:
    # Backgrounds are always light and shapes mid-dark, so the shape is the figure in every image
    # and two mixed images show two superimposed figures, not a figure/ground swap.
    base = _hsv(rng, (0.0, 0.25), (0.82, 0.98))
    kind = int(rng.integers(3))
    if kind == 0:  # solid
        return np.broadcast_to(base, (side, side, 3)).copy()
    if kind == 1:  # linear gradient between two light colours in a random direction
        other = _hsv(rng, (0.0, 0.25), (0.82, 0.98))
        angle = rng.uniform(0.0, 2.0 * math.pi)
        ys, xs = np.mgrid[0:side, 0:side] / (side - 1) - 0.5
        t = np.clip(xs * math.cos(angle) + ys * math.sin(angle) + 0.5, 0.0, 1.0)[..., None]
        gradient: npt.NDArray[np.float64] = base * (1.0 - t) + other * t
        return gradient
    # Smooth blotchy noise (a coarse random grid, bicubic-upsampled) plus a little grain.
    coarse = rng.normal(0.0, 9.0, size=(5, 5)).astype(np.float32)
    blotches = np.asarray(
        Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC),
        dtype=np.float64,
    )
    grain = rng.normal(0.0, 8.0, size=(side, side))
    return np.clip(base + (blotches + grain)[..., None], 0.0, 255.0)


def _demo_mask(class_name: str, rng: np.random.Generator, side: int) -> npt.NDArray[np.float64]:
    filled, holes, max_rotation = _SHAPES[class_name]
    radius = side * rng.uniform(0.28, 0.40)
    # Jitter the centre but keep the whole shape (plus a small margin) inside the frame.
    room = max(0.0, side / 2 - radius - side * 0.04)
    jitter = min(room, side * 0.12)
    cx, cy = side / 2 + rng.uniform(-jitter, jitter, size=2)
    theta = math.radians(rng.uniform(-max_rotation, max_rotation))
    cos_t, sin_t = math.cos(theta), math.sin(theta)

    def place(outline: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [
            (cx + radius * (x * cos_t - y * sin_t), cy + radius * (x * sin_t + y * cos_t))
            for x, y in outline
        ]

    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    for outline in filled:
        draw.polygon(place(outline), fill=255)
    for outline in holes:
        draw.polygon(place(outline), fill=0)
    return np.asarray(mask, dtype=np.float64)[..., None] / 255.0


def _draw_demo(class_name: str, rng: np.random.Generator, size: int) -> Pixels:
    side = size * _SUPERSAMPLE
    background = _demo_background(rng, side)
    mask = _demo_mask(class_name, rng, side)
    fill = _hsv(rng, (0.55, 0.95), (0.30, 0.65))
    composed = background * (1.0 - mask) + fill * mask
    big = Image.fromarray(np.rint(composed).astype(np.uint8))
    small = big.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8).copy()


def generate_demo_images(*, per_class: int = 8, size: int = 32, seed: int = 0) -> list[BaseImage]:
    """Draw `per_class` instances of every class in DEMO_CLASSES; never touches the network.

    Each (seed, class, instance) gets its own random stream, so instance k is the same image
    whatever `per_class` is: growing a demo set never changes the images already in use.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    if size < _MIN_DEMO_SIZE:
        raise ValueError(f"size must be at least {_MIN_DEMO_SIZE} to keep shapes legible")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    images = []
    for class_index, class_name in enumerate(DEMO_CLASSES):
        for instance in range(per_class):
            rng = np.random.default_rng([seed, class_index, instance])
            pixels = _draw_demo(class_name, rng, size)
            images.append(BaseImage(class_name=class_name, ref=str(instance), pixels=pixels))
    return images


# ---------------------------------------------------------------------------------------------
# Decoding untrusted image bytes
# ---------------------------------------------------------------------------------------------

# Everything Pillow (or struct/zlib underneath it) raises on hostile or broken input. Listed
# explicitly rather than `Exception` so programming errors still surface.
_DECODE_ERRORS: Final = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,  # Pillow's PNG verifier reports broken chunks/CRCs this way
    ValueError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def _open_image(source: Path | bytes) -> Image.Image:
    fp: Path | IO[bytes] = source if isinstance(source, Path) else io.BytesIO(source)
    return Image.open(fp, formats=_PIL_FORMATS)


def _to_rgb(image: Image.Image) -> Pixels:
    # Phone JPEGs are often stored sideways with an EXIF rotation; show them as viewers do.
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: convert("RGB") would clip everything above 255 to white.
        wide = np.asarray(image, dtype=np.int64)
        image = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Flatten transparency onto white (the page background) instead of dropping alpha, which
        # would expose whatever colour the transparent pixels happen to store (often black).
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


@contextmanager
def _decode_errors(max_pixels: int) -> Iterator[None]:
    """Pillow's many ways of refusing a file, as _PixelLimitError or _BrokenImageError."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat the warning as the
        # refusal it is meant to be. Our own max_pixels check is the stricter limit in practice
        # (Pillow's default is ~89 Mpx); Pillow's still applies above it.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except _PixelLimitError:
            raise
        except _DECODE_ERRORS as exc:
            if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
                raise _PixelLimitError(f"refused as a decompression bomb ({exc})") from exc
            raise _BrokenImageError(_describe(exc)) from exc


def _probe(source: Path | bytes, *, max_pixels: int) -> None:
    """The header's size and the file's structure and checksums, without decoding pixels."""
    with _decode_errors(max_pixels), _open_image(source) as probe:
        _check_size(probe.size, max_pixels)
        probe.verify()


def _decode_rgb(source: Path | bytes, *, max_pixels: int) -> Pixels:
    """Verify, then reopen and fully decode; raises ValueError-family errors with a reason."""
    _probe(source, max_pixels=max_pixels)
    # verify() leaves the image unusable, so reopen to decode (Pillow's documented way).
    with _decode_errors(max_pixels), _open_image(source) as image:
        _check_size(image.size, max_pixels)
        image.load()  # a truncated file fails here, not later
        return _to_rgb(image)


class _PixelLimitError(ValueError):
    pass


class _BrokenImageError(ValueError):
    pass


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    # Checked on the header alone, before a single pixel is decompressed.
    if width * height > max_pixels:
        raise _PixelLimitError(
            f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} "
            "(possible decompression bomb)"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        allowed = ", ".join(_PIL_FORMATS)
        return f"not a readable image (supported: {allowed})"
    return f"not a valid image ({type(exc).__name__}: {exc})"


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Pixels:
    """Decode PNG/JPEG/BMP/WebP bytes to HxWx3 uint8 RGB, refusing more than max_pixels."""
    try:
        return _decode_rgb(bytes(data), max_pixels=max_pixels)
    except (_PixelLimitError, _BrokenImageError) as exc:
        raise ImageImportError(str(exc)) from exc


def encode_png(pixels: Pixels) -> bytes:
    """PNG bytes of an HxWx3 uint8 RGB array (no timestamps, so equal pixels give equal bytes)."""
    _check_pixels(pixels)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Folder and zip importers
# ---------------------------------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    # Finder/Explorer litter: .DS_Store, ._AppleDouble forks, .git, and macOS zips' __MACOSX.
    return name.startswith(".") or name == "__MACOSX"


def _key_safe(name: str) -> str:
    # "_" separates the fields of a stimulus key (mixed_<λ>_<Class1>_<ref1>_<Class2>_<ref2>), so
    # it cannot appear inside a class name or ref; "-" keeps names like golden_retriever legible.
    # NFC: macOS stores file names decomposed, which would make "Café" two different classes.
    return unicodedata.normalize("NFC", name).replace("_", "-")


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    # img2 before img10, as a researcher browsing the folder expects.
    return [
        (0, int(part)) if part.isascii() and part.isdigit() else (1, part)
        for part in re.split(r"([0-9]+)", text)
        if part
    ]


@dataclass(frozen=True)
class _Candidate:
    class_dir: str
    stem: str
    label: str  # path shown in error messages, relative to the folder or zip root
    load: Callable[[], Path | bytes]


@dataclass(frozen=True)
class ImageName:
    """An image's class and ref without its pixels: what a zip holds, checked but not decoded."""

    class_name: str
    ref: str


class ImageRef(Protocol):
    """Anything naming an image: a BaseImage, an ImageName or a stored SourceImage."""

    @property
    def class_name(self) -> str: ...

    @property
    def ref(self) -> str: ...


# Called after each image with (images done, images in all), e.g. to report a job's progress.
OnImage = Callable[[int, int], None]


def _named(candidates: Iterable[_Candidate]) -> list[tuple[ImageName, _Candidate]]:
    """Class names and refs of the candidates, in import order, checked for clashes."""
    by_class: dict[str, list[_Candidate]] = defaultdict(list)
    class_origin: dict[str, str] = {}
    for candidate in candidates:
        class_name = _key_safe(candidate.class_dir)
        previous = class_origin.setdefault(class_name, candidate.class_dir)
        if previous != candidate.class_dir:
            raise ImageImportError(
                f"class folders {previous!r} and {candidate.class_dir!r} both become class "
                f"{class_name!r} ('_' is replaced by '-'); rename one of them"
            )
        if len(class_name) > MAX_CLASS_NAME_LENGTH:
            raise ImageImportError(
                f"{candidate.label}: class name longer than {MAX_CLASS_NAME_LENGTH} characters"
            )
        by_class[class_name].append(candidate)

    named: list[tuple[ImageName, _Candidate]] = []
    for class_name in sorted(by_class):
        seen: dict[str, str] = {}
        for candidate in sorted(by_class[class_name], key=lambda c: _natural_key(c.stem)):
            ref = _key_safe(candidate.stem)
            if len(ref) > MAX_REF_LENGTH:
                raise ImageImportError(
                    f"{candidate.label}: file name longer than {MAX_REF_LENGTH} characters"
                )
            if ref in seen:
                raise ImageImportError(
                    f"{candidate.label}: same image id {ref!r} as {seen[ref]} in class "
                    f"{class_name!r}; file names (without extension) must be unique per class"
                )
            seen[ref] = candidate.label
            named.append((ImageName(class_name=class_name, ref=ref), candidate))
    return named


def _build_images(
    candidates: Iterable[_Candidate], *, max_pixels: int, on_image: OnImage | None = None
) -> list[BaseImage]:
    named = _named(candidates)
    images: list[BaseImage] = []
    for name, candidate in named:
        try:
            pixels = _decode_rgb(candidate.load(), max_pixels=max_pixels)
        except (_PixelLimitError, _BrokenImageError) as exc:
            raise ImageImportError(f"{candidate.label}: {exc}") from exc
        images.append(BaseImage(class_name=name.class_name, ref=name.ref, pixels=pixels))
        if on_image is not None:
            on_image(len(images), len(named))
    return images


def _check_images(candidates: Iterable[_Candidate], *, max_pixels: int) -> list[ImageName]:
    """What _build_images refuses on the names and headers alone (size, format, structure and
    checksums), without decoding a pixel: a file that only fails when decoded passes here."""
    named = _named(candidates)
    for _, candidate in named:
        try:
            _probe(candidate.load(), max_pixels=max_pixels)
        except (_PixelLimitError, _BrokenImageError) as exc:
            raise ImageImportError(f"{candidate.label}: {exc}") from exc
    return [name for name, _ in named]


def _constant(path: Path) -> Callable[[], Path]:
    return lambda: path


def load_image_folder(root: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[BaseImage]:
    """Load root/<class>/<image>.{png,jpg,jpeg,bmp,webp}: classes sorted, images in name order.

    Hidden entries are skipped, as are files with other extensions (a stray labels.csv) and
    deeper subfolders. Refs are file stems with '_' replaced by '-' (see _key_safe).
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageImportError(f"{root} is not a folder")
    resolved_root = root.resolve()
    class_dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not _is_hidden(p.name)),
        key=lambda p: p.name,
    )
    if not class_dirs:
        raise ImageImportError(
            f"{root} has no class folders: expected <class>/<image>.png, one folder per class"
        )

    candidates: list[_Candidate] = []
    for class_dir in class_dirs:
        files = [
            p
            for p in class_dir.iterdir()
            if not _is_hidden(p.name) and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ]
        if not files:
            raise ImageImportError(
                f"{class_dir.name}/: class folder contains no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))}; subfolders are not searched)"
            )
        for path in files:
            label = path.relative_to(root).as_posix()
            # A symlink may point anywhere on the server; only files inside the folder count.
            if not path.resolve().is_relative_to(resolved_root):
                raise ImageImportError(f"{label}: links outside the image folder")
            candidates.append(_Candidate(class_dir.name, path.stem, label, _constant(path)))
    return _build_images(candidates, max_pixels=max_pixels)


def _unsafe_member(name: str) -> bool:
    # Nothing is extracted to disk, but a member that would escape the extraction root is a sign
    # of a crafted archive (zip-slip), so the whole upload is refused rather than guessed at.
    path = PurePosixPath(name)
    return (
        name.startswith("/")
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in path.parts
        or "\x00" in name
    )


_T = TypeVar("_T")


def _with_zip_candidates(
    source: Path | str | IO[bytes],
    use: Callable[[list[_Candidate]], _T],
    *,
    max_members: int,
    max_total_bytes: int,
    max_member_bytes: int,
) -> _T:
    """Open the zip, check its layout and hand its image members to `use` while it is open."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ImageImportError(f"not a readable zip file ({exc})") from exc

    with archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise ImageImportError(
                f"zip has {len(infos)} entries, more than the limit of {max_members}"
            )
        members: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
        for info in infos:
            # Some Windows tools write "\" separators, which would hide a "..\" from the check.
            name = info.filename.replace("\\", "/")
            if _unsafe_member(name):
                raise ImageImportError(f"{info.filename}: unsafe path in zip (zip-slip)")
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ImageImportError(f"{info.filename}: symbolic links are not allowed")
            parts = tuple(p for p in name.split("/") if p not in ("", "."))
            if not parts or any(_is_hidden(p) for p in parts):
                continue
            if PurePosixPath(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            zip_member_size_check(info, max_bytes=max_member_bytes)
            members.append((parts, info))

        if not members:
            raise ImageImportError(
                "zip contains no images: expected <class>/<image>.png, optionally under one "
                "top-level folder"
            )
        declared = sum(info.file_size for _, info in members)
        if declared > max_total_bytes:
            raise ImageImportError(
                f"zip images total {declared} bytes uncompressed, more than the limit of "
                f"{max_total_bytes} (possible zip bomb)"
            )

        depths = {len(parts) for parts, _ in members}
        top_levels = {parts[0] for parts, _ in members}
        if depths == {2}:
            strip = 0
        elif depths == {3} and len(top_levels) == 1:
            strip = 1
        else:
            example = next(
                info.filename
                for parts, info in members
                if len(parts) != 2 and not (len(parts) == 3 and len(top_levels) == 1)
            )
            raise ImageImportError(
                f"{example}: expected <class>/<image> inside the zip, optionally under one "
                "top-level folder"
            )

        def reader(info: zipfile.ZipInfo) -> Callable[[], bytes]:
            return lambda: read_zip_member(archive, info, max_bytes=max_member_bytes)

        candidates = [
            _Candidate(
                class_dir=parts[strip],
                stem=PurePosixPath(parts[-1]).stem,
                label=info.filename,
                load=reader(info),
            )
            for parts, info in members
        ]
        return use(candidates)


def load_image_zip(
    source: Path | str | IO[bytes],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_members: int = 20_000,
    max_total_bytes: int = DEFAULT_MAX_ZIP_TOTAL_BYTES,
    max_member_bytes: int = DEFAULT_MAX_ZIP_MEMBER_BYTES,
    on_image: OnImage | None = None,
) -> list[BaseImage]:
    """Load a zip of <class>/<image> (optionally all under one top-level folder).

    Refuses zip-slip paths, symlinks, more than max_members entries and members that inflate
    to more than max_member_bytes each or max_total_bytes together (zip bombs), by the sizes
    in the central directory before decompressing anything, and again while inflating.
    """
    return _with_zip_candidates(
        source,
        lambda candidates: _build_images(candidates, max_pixels=max_pixels, on_image=on_image),
        max_members=max_members,
        max_total_bytes=max_total_bytes,
        max_member_bytes=max_member_bytes,
    )


def check_image_zip(
    source: Path | str | IO[bytes],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_members: int = 20_000,
    max_total_bytes: int = DEFAULT_MAX_ZIP_TOTAL_BYTES,
    max_member_bytes: int = DEFAULT_MAX_ZIP_MEMBER_BYTES,
) -> list[ImageName]:
    """load_image_zip's checks that need no decoding (layout, names, every image's header and
    checksums): the names it would load, or the ImageImportError it would most likely raise."""
    return _with_zip_candidates(
        source,
        lambda candidates: _check_images(candidates, max_pixels=max_pixels),
        max_members=max_members,
        max_total_bytes=max_total_bytes,
        max_member_bytes=max_member_bytes,
    )


def zip_member_size_check(info: zipfile.ZipInfo, *, max_bytes: int) -> None:
    """Refuse a member whose central-directory entry says it inflates to more than max_bytes,
    before a byte of it is inflated."""
    if info.file_size > max_bytes:
        raise ImageImportError(
            f"{info.filename}: inflates to {info.file_size} bytes, more than the limit of "
            f"{max_bytes} per file (possible zip bomb)"
        )


def read_zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, max_bytes: int) -> bytes:
    """The member's bytes, inflated a chunk at a time and refused as soon as they pass the size
    its central-directory entry declares or max_bytes.

    The declared size is checked first (zip_member_size_check), but headers can lie, so the
    count is kept while reading too: memory never holds more than the member's budget plus one
    chunk. (zipfile itself also stops at the declared size and then fails the CRC check.)
    """
    zip_member_size_check(info, max_bytes=max_bytes)
    budget = info.file_size
    data = bytearray()
    try:
        with archive.open(info) as member:
            while chunk := member.read(_ZIP_CHUNK):
                data += chunk
                if len(data) > budget:
                    raise ImageImportError(f"{info.filename}: larger than its declared size")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise ImageImportError(f"{info.filename}: corrupt zip entry ({exc})") from exc
    except (RuntimeError, NotImplementedError) as exc:  # encrypted or unsupported compression
        raise ImageImportError(f"{info.filename}: cannot be read ({exc})") from exc
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 "python version" batches
# ---------------------------------------------------------------------------------------------


def _cifar_name(raw: object, *, source: Path) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="strict")
    if not isinstance(raw, str) or not raw:
        raise ImageImportError(f"{source}: label names must be non-empty strings")
    # First letter only: str.capitalize() would also lower-case the rest ("ImageNet" → "Imagenet").
    return _key_safe(raw[:1].upper() + raw[1:])


def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with Path(path).open("rb") as handle:
            # Unpickling runs arbitrary code: only ever call this on trusted, researcher-provided
            # CIFAR batch files (a management command), never on participant uploads.
            loaded = pickle.load(handle, encoding="bytes")  # noqa: S301 - trusted researcher file
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        AttributeError,
        ImportError,
        IndexError,
        TypeError,
        ValueError,
        UnicodeDecodeError,
    ) as exc:
        raise ImageImportError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(loaded, dict):
        raise ImageImportError(f"{path}: expected a pickled dict, got {type(loaded).__name__}")
    return loaded


def _field(batch: Mapping[Any, Any], name: str, *, source: Path) -> Any:
    # Files re-pickled under Python 3 have str keys; the originals have bytes keys.
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise ImageImportError(f"{source}: missing {name!r}")


def _cifar_label_names(meta_path: Path) -> tuple[str, ...]:
    meta = _unpickle(meta_path)
    raw = _field(meta, "label_names", source=meta_path)
    if not isinstance(raw, list | tuple) or not raw:
        raise ImageImportError(f"{meta_path}: label_names must be a non-empty list")
    try:
        names = tuple(_cifar_name(name, source=meta_path) for name in raw)
    except UnicodeDecodeError as exc:
        raise ImageImportError(f"{meta_path}: label names are not UTF-8") from exc
    if len(set(names)) != len(names):
        raise ImageImportError(f"{meta_path}: duplicate label names {names}")
    return names


def load_cifar10_batches(
    paths: Sequence[Path],
    *,
    meta_path: Path | None = None,
    limit_per_class: int | None = None,
) -> list[BaseImage]:
    """Images of CIFAR-10 python batches, in file order.

    ref is the row index counted across `paths` in the order given: for a single file (e.g.
    test_batch) that is the index within the file, i.e. the CIFAR-10 test index the published
    H-Mix files use; for data_batch_1..5 in order it is the training-set index. Counting across
    files keeps refs unique when several batches are loaded together.
    limit_per_class keeps the first N images of each class.
    """
    if not paths:
        raise ImageImportError("no CIFAR-10 batch files given")
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(f"limit_per_class must be at least 1, got {limit_per_class}")
    names = _cifar_label_names(Path(meta_path)) if meta_path is not None else CIFAR10_CLASSES

    images: list[BaseImage] = []
    taken: Counter[int] = Counter()
    offset = 0
    for raw_path in paths:
        path = Path(raw_path)
        if limit_per_class is not None and all(
            taken[c] >= limit_per_class for c in range(len(names))
        ):
            break
        batch = _unpickle(path)
        data = _field(batch, "data", source=path)
        labels = _field(batch, "labels", source=path)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
            raise ImageImportError(f"{path}: 'data' must be a uint8 numpy array")
        if data.ndim != 2 or data.shape[1] != _CIFAR_ROW_LENGTH:
            raise ImageImportError(
                f"{path}: 'data' must have shape (N, {_CIFAR_ROW_LENGTH}), got {data.shape}"
            )
        if data.shape[0] == 0:
            raise ImageImportError(f"{path}: batch has no images")
        label_array = np.asarray(labels)
        if label_array.ndim != 1 or not np.issubdtype(label_array.dtype, np.integer):
            raise ImageImportError(f"{path}: 'labels' must be a list of integers")
        if len(label_array) != data.shape[0]:
            raise ImageImportError(f"{path}: {len(label_array)} labels for {data.shape[0]} images")
        bad = (label_array < 0) | (label_array >= len(names))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ImageImportError(
                f"{path}: row {row} has label {int(label_array[row])}, outside 0..{len(names) - 1}"
            )
        # Each row is the R plane, then G, then B, each 32x32 row-major; move channels last.
        cube = data.reshape(-1, 3, _CIFAR_SIDE, _CIFAR_SIDE).transpose(0, 2, 3, 1)
        for row, label in enumerate(label_array.tolist()):
            if limit_per_class is not None and taken[label] >= limit_per_class:
                continue
            taken[label] += 1
            # Copy per image so a few kept images do not pin the whole 30 MB batch in memory.
            pixels = np.ascontiguousarray(cube[row]).copy()
            images.append(BaseImage(class_name=names[label], ref=str(offset + row), pixels=pixels))
        offset += data.shape[0]
    return images


# ---------------------------------------------------------------------------------------------
# Mixup
# ---------------------------------------------------------------------------------------------


def _check_lambda(lam: float) -> float:
    value = float(lam)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"λ must be in [0, 1], got {lam!r}")
    return value


def mix(img1: Pixels, img2: Pixels, lam: float) -> Pixels:
    """x = λ·img1 + (1 - λ)·img2 in float64, rounded to uint8
    (docs/user-guide/interfaces.md#conventions).

    Rounding is round-half-to-even (np.rint): at λ = 0.5 every pixel pair with an odd sum is an
    exact .5 tie, and rounding those half-up would brighten every 50/50 stimulus by 0.25 grey
    levels on average; half-to-even is unbiased. Before np.rint the float sum is snapped to
    9 decimals, because float64 lands a few ulps either side of a true tie (0.1·15 = 1.5 but
    (1 - 0.9)·15 = 1.4999999999999996), which would make mix(a, b, λ) ≠ mix(b, a, 1 - λ).
    """
    value = _check_lambda(lam)
    _check_pixels(img1)
    _check_pixels(img2)
    if img1.shape != img2.shape:
        raise ValueError(f"images must have the same shape, got {img1.shape} and {img2.shape}")
    blended = value * img1.astype(np.float64) + (1.0 - value) * img2.astype(np.float64)
    rounded = np.rint(np.round(blended, 9))
    return np.clip(rounded, 0, 255).astype(np.uint8)


def midpoint_lambda(step: int) -> float:
    """λ of step 0..10 of the midpoint series: computed as step/10, never parsed from text."""
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        raise TypeError(f"step must be an integer, got {type(step).__name__}")
    if not 0 <= step < MIDPOINT_STEPS:
        raise ValueError(f"step must be in 0..{MIDPOINT_STEPS - 1}, got {step}")
    return int(step) / (MIDPOINT_STEPS - 1)


def midpoint_series(img1: Pixels, img2: Pixels) -> list[Pixels]:
    """The 11 images λ = 0.0, 0.1, …, 1.0 (index = step); step 0 is img2, step 10 is img1."""
    return [mix(img1, img2, midpoint_lambda(step)) for step in range(MIDPOINT_STEPS)]


def _check_key_part(what: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if "_" in value or "/" in value or "\\" in value:
        raise ValueError(f"{what} {value!r} must not contain '_', '/' or '\\' (key separators)")


@dataclass(frozen=True)
class MixSpec:
    """One mixup stimulus: λ·(class1, ref1) + (1 - λ)·(class2, ref2), class1 < class2."""

    class1: str
    ref1: str
    class2: str
    ref2: str
    lam: float

    def __post_init__(self) -> None:
        for what, value in (
            ("class1", self.class1),
            ("ref1", self.ref1),
            ("class2", self.class2),
            ("ref2", self.ref2),
        ):
            _check_key_part(what, value)
        # By convention image 1 is the alphabetically first class (code-point order, as sorted()
        # orders the class list), so each stimulus has exactly one spelling of its key.
        if not self.class1 < self.class2:
            raise ValueError(
                f"class1 must sort before class2, got {self.class1!r} and {self.class2!r}"
            )
        object.__setattr__(self, "lam", round(_check_lambda(self.lam), _LAMBDA_DECIMALS))

    @property
    def key(self) -> str:
        # repr(float) is Python's shortest round-tripping form: 0.25, 0.5, 0.1, 0.0, 1.0, as in
        # the published H-Mix file names ("mixed_0.25_Cat_4346_Truck_4932.png").
        return f"mixed_{self.lam!r}_{self.class1}_{self.ref1}_{self.class2}_{self.ref2}.png"

    @property
    def mixup_label(self) -> tuple[float, float]:
        """Traditional mixup label: (weight of class1, weight of class2) = (λ, 1 - λ)."""
        return (self.lam, round(1.0 - self.lam, _LAMBDA_DECIMALS))


def render_mix(spec: MixSpec, img1: BaseImage, img2: BaseImage) -> Pixels:
    """Pixels of `spec`; checks the images are the ones it names, in its order."""
    for which, image, class_name, ref in (
        ("img1", img1, spec.class1, spec.ref1),
        ("img2", img2, spec.class2, spec.ref2),
    ):
        if (image.class_name, image.ref) != (class_name, ref):
            raise ValueError(
                f"{which} is {image.class_name}/{image.ref}, but the spec names {class_name}/{ref}"
            )
    return mix(img1.pixels, img2.pixels, spec.lam)


def plan_mixup(
    images: Sequence[ImageRef],
    *,
    lambdas: Sequence[float],
    n_pairs: int,
    seed: int,
) -> list[MixSpec]:
    """n_pairs image pairs x every λ, deterministic in (the set of images, lambdas, n_pairs, seed).

    Class pairs are spread evenly: the plan walks through all unordered class pairs in a freshly
    shuffled order per round, so no pair repeats before every pair was used. Within a pair the
    least-used image of each class is taken (ties broken at random), so no image is reused
    while its class has unused ones, and an image pair is never repeated (keys stay unique).
    Output order: pair by pair, and within a pair the order of `lambdas`.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    if not lambdas:
        raise ValueError("lambdas must not be empty")
    lams = [round(_check_lambda(lam), _LAMBDA_DECIMALS) for lam in lambdas]
    if len(set(lams)) != len(lams):
        raise ValueError(f"lambdas must be distinct, got {list(lambdas)}")

    by_class: dict[str, list[ImageRef]] = defaultdict(list)
    for image in images:
        by_class[image.class_name].append(image)
    classes = sorted(by_class)
    if len(classes) < 2:
        raise ValueError(f"mixup needs images of at least 2 classes, got {len(classes)}")
    for class_name in classes:
        # Sorting makes the plan independent of the order the caller happened to list images in.
        by_class[class_name].sort(key=lambda image: _natural_key(image.ref))
        refs = [image.ref for image in by_class[class_name]]
        if len(set(refs)) != len(refs):
            raise ValueError(f"class {class_name!r} has duplicate refs")

    rng = np.random.default_rng(seed)
    all_pairs = list(combinations(classes, 2))  # (a, b) with a < b since classes is sorted
    uses: dict[str, list[int]] = {c: [0] * len(by_class[c]) for c in classes}
    used_pairs: set[tuple[str, int, str, int]] = set()

    def least_used_first(class_name: str) -> list[int]:
        shuffled = rng.permutation(len(by_class[class_name])).tolist()
        return sorted(shuffled, key=lambda i: uses[class_name][i])  # stable: random tie-break

    specs: list[MixSpec] = []
    planned = 0
    while planned < n_pairs:
        for pair_index in rng.permutation(len(all_pairs)).tolist():
            if planned == n_pairs:
                break
            class1, class2 = all_pairs[pair_index]
            order1, order2 = least_used_first(class1), least_used_first(class2)
            choice = next(
                (
                    (i, j)
                    for i in order1
                    for j in order2
                    if (class1, i, class2, j) not in used_pairs
                ),
                None,
            )
            if choice is None:
                raise ValueError(
                    f"not enough images for {n_pairs} distinct pairs: every image pair of "
                    f"{class1} and {class2} is already planned"
                )
            i, j = choice
            used_pairs.add((class1, i, class2, j))
            uses[class1][i] += 1
            uses[class2][j] += 1
            image1, image2 = by_class[class1][i], by_class[class2][j]
            specs.extend(
                MixSpec(class1=class1, ref1=image1.ref, class2=class2, ref2=image2.ref, lam=lam)
                for lam in lams
            )
            planned += 1
    return specs
