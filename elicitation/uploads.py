"""Researcher uploads from the web (study builder pages and API): untrusted files in, checked
base images or IRI files out, or an ImageImportError that says which file and why.

Nothing here writes anything; the services store what these functions return. The checks run
before a single pixel is decoded where they can: the upload's size, the zip's member count and
declared sizes (imaging.load_image_zip), the pixel count in each image header (per image and in
total, so a zip of many small-but-huge-when-decoded images cannot exhaust memory either), and
for CIFAR-10 batches a restricted unpickler that refuses anything but numpy arrays and plain
containers (unpickling an arbitrary upload would run arbitrary code).
"""

import io
import pickle
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from django.conf import settings
from django.core.files.base import ContentFile, File
from PIL import Image

from elicitation import imaging, iri_manifest

# About 300 MB of decoded RGB: all of CIFAR-10 (60,000 × 32²) fits, a zip of thousands of
# 4096² images does not.
DEFAULT_MAX_TOTAL_PIXELS: Final = 100_000_000
# Entries in one zip (imaging.load_image_zip's default).
MAX_ZIP_MEMBERS: Final = 20_000
# Decoders for the header-only pixel count (the loaders allow the same formats).
_HEADER_FORMATS: Final = ("PNG", "JPEG", "BMP", "WEBP")
# What a CIFAR-10 "python version" batch may reference: the dict/list/bytes it is made of are
# pickle opcodes, the arrays need these. Protocol 2 files written by Python 3 encode bytes
# through _codecs.encode. numpy 2 renamed numpy.core to numpy._core; old files use the former.
_CIFAR_GLOBALS: Final = frozenset(
    {
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }
)


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int
    max_pixels: int
    max_total_pixels: int
    max_zip_member_bytes: int = imaging.DEFAULT_MAX_ZIP_MEMBER_BYTES
    max_zip_total_bytes: int = imaging.DEFAULT_MAX_ZIP_TOTAL_BYTES


def upload_limits() -> UploadLimits:
    """The limits from the settings: HMIX_MAX_UPLOAD_BYTES per file, HMIX_MAX_IMAGE_PIXELS per
    image, HMIX_MAX_UPLOAD_TOTAL_PIXELS per upload, HMIX_MAX_ZIP_MEMBER_BYTES and
    HMIX_MAX_ZIP_TOTAL_BYTES for what a zip may inflate to."""
    return UploadLimits(
        max_file_bytes=settings.HMIX_MAX_UPLOAD_BYTES or 0,
        max_pixels=getattr(settings, "HMIX_MAX_IMAGE_PIXELS", imaging.DEFAULT_MAX_PIXELS),
        max_total_pixels=getattr(
            settings, "HMIX_MAX_UPLOAD_TOTAL_PIXELS", DEFAULT_MAX_TOTAL_PIXELS
        ),
        max_zip_member_bytes=settings.HMIX_MAX_ZIP_MEMBER_BYTES,
        max_zip_total_bytes=settings.HMIX_MAX_ZIP_TOTAL_BYTES,
    )


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    return f"{n / 1024:.1f} KB"


def check_size(upload: File, limits: UploadLimits) -> None:
    size = upload.size or 0
    if limits.max_file_bytes and size > limits.max_file_bytes:
        raise imaging.ImageImportError(
            f"{upload.name}: {_size(size)} is larger than the upload limit of "
            f"{_size(limits.max_file_bytes)}"
        )
    if size == 0:
        raise imaging.ImageImportError(f"{upload.name}: the file is empty")


def _check_total_pixels(archive: zipfile.ZipFile, limits: UploadLimits) -> None:
    """Sum the pixel counts in the image headers of the zip, without decoding any pixels.

    Members that are not images, or not readable, are skipped here: the loader reports them
    with the file name. The member count was checked before (imaging.load_image_zip's limit),
    and so are members declared larger than a file may inflate to (the loader refuses them
    before inflating a byte).
    """
    total = 0
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        if info.is_dir() or PurePosixPath(name).suffix.lower() not in imaging.IMAGE_SUFFIXES:
            continue
        if info.file_size > limits.max_zip_member_bytes:
            continue
        try:
            with archive.open(info) as member, Image.open(member, formats=_HEADER_FORMATS) as im:
                width, height = im.size
        except (OSError, ValueError, zipfile.BadZipFile, Image.DecompressionBombError):
            continue
        total += width * height
        if total > limits.max_total_pixels:
            raise imaging.ImageImportError(
                f"the zip's images have more than {limits.max_total_pixels} pixels in total "
                "(the upload limit); upload fewer or smaller images"
            )


def _open_zip(upload: File, limits: UploadLimits) -> io.BytesIO:
    """The upload's bytes once its size and the pixel total in its headers are within limits."""
    check_size(upload, limits)
    upload.seek(0)
    data = io.BytesIO(upload.read())
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise imaging.ImageImportError(f"{upload.name}: not a readable zip file ({exc})") from exc
    with archive:
        if len(archive.infolist()) <= MAX_ZIP_MEMBERS:  # more: the loader refuses the zip
            _check_total_pixels(archive, limits)
    data.seek(0)
    return data


def images_from_zip(
    upload: File, *, limits: UploadLimits, on_image: imaging.OnImage | None = None
) -> list[imaging.BaseImage]:
    """Base images from a zip of <class>/<image>.png (optionally under one top folder)."""
    data = _open_zip(upload, limits)
    return imaging.load_image_zip(
        data,
        max_pixels=limits.max_pixels,
        max_members=MAX_ZIP_MEMBERS,
        max_member_bytes=limits.max_zip_member_bytes,
        max_total_bytes=limits.max_zip_total_bytes,
        on_image=on_image,
    )


def check_zip(upload: File, *, limits: UploadLimits) -> list[imaging.ImageName]:
    """images_from_zip's checks that need no decoding, for a request to run before it queues
    the upload (imaging.check_image_zip): an image that is only broken deep inside its pixel
    data passes here and fails the job instead."""
    data = _open_zip(upload, limits)
    return imaging.check_image_zip(
        data,
        max_pixels=limits.max_pixels,
        max_members=MAX_ZIP_MEMBERS,
        max_member_bytes=limits.max_zip_member_bytes,
        max_total_bytes=limits.max_zip_total_bytes,
    )


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str, /) -> Any:
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def _check_cifar_pickle(path: Path, label: str) -> None:
    """Load the file with the restricted unpickler first: if that succeeds, the file references
    nothing but numpy arrays, so imaging's loader (a plain pickle.load) runs no foreign code."""
    try:
        with path.open("rb") as handle:
            _CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise imaging.ImageImportError(
            f"{label}: not a CIFAR-10 python batch file ({exc})"
        ) from exc
    except (IndexError, KeyError, ImportError, UnicodeDecodeError, MemoryError) as exc:
        raise imaging.ImageImportError(f"{label}: not a CIFAR-10 python batch file") from exc


def _save(upload: File, folder: Path, index: int) -> Path:
    path = folder / f"upload-{index}"
    upload.seek(0)
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


def images_from_cifar(
    batches: Sequence[File],
    *,
    meta: File | None = None,
    limit_per_class: int | None = None,
    limits: UploadLimits,
) -> list[imaging.BaseImage]:
    """Base images from CIFAR-10 "python version" batch files (+ batches.meta for the names)."""
    if not batches:
        raise imaging.ImageImportError("choose at least one CIFAR-10 batch file")
    uploads = [*batches, *([meta] if meta is not None else [])]
    for upload in uploads:
        check_size(upload, limits)
    with tempfile.TemporaryDirectory(prefix="hmix-cifar-") as tmp:
        paths = [_save(upload, Path(tmp), i) for i, upload in enumerate(uploads)]
        for path, upload in zip(paths, uploads, strict=True):
            _check_cifar_pickle(path, upload.name or path.name)
        try:
            images = imaging.load_cifar10_batches(
                paths[: len(batches)],
                meta_path=paths[-1] if meta is not None else None,
                limit_per_class=limit_per_class,
            )
        except imaging.ImageImportError as exc:
            # The loader names the temporary path; name the uploaded file instead.
            message = str(exc)
            for path, upload in zip(paths, uploads, strict=True):
                message = message.replace(str(path), upload.name or path.name)
            raise imaging.ImageImportError(message) from exc
    pixels = len(images) * 32 * 32
    if pixels > limits.max_total_pixels:
        raise imaging.ImageImportError(
            f"{len(images)} images are more than the upload limit of "
            f"{limits.max_total_pixels} pixels in total; use limit per class"
        )
    return images


# A CIFAR upload is several files; a job keeps one (jobs.Job.upload), so they are stored
# together in one uncompressed zip (the batches are random-looking bytes: deflate gains nothing).
_CIFAR_BATCH_DIR: Final = "batches"
_CIFAR_META_DIR: Final = "meta"


def cifar_pack(batches: Sequence[File], *, meta: File | None = None) -> ContentFile:
    """The batch files (in order) and the meta file in one zip, under their own names."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for index, upload in enumerate(batches):
            upload.seek(0)
            archive.writestr(f"{_CIFAR_BATCH_DIR}/{index}/{_plain_name(upload)}", upload.read())
        if meta is not None:
            meta.seek(0)
            archive.writestr(f"{_CIFAR_META_DIR}/{_plain_name(meta)}", meta.read())
    return ContentFile(out.getvalue(), name="cifar.zip")


def _plain_name(upload: File) -> str:
    return PurePosixPath((upload.name or "upload").replace("\\", "/")).name or "upload"


def images_from_cifar_pack(
    packed: File, *, limit_per_class: int | None, limits: UploadLimits
) -> list[imaging.BaseImage]:
    """images_from_cifar on the files cifar_pack stored (the same checks run again here)."""
    packed.seek(0)
    with zipfile.ZipFile(io.BytesIO(packed.read())) as archive:
        batches: list[tuple[int, File]] = []
        meta: File | None = None
        for info in archive.infolist():
            parts = info.filename.split("/")
            # Our own zip of files that each passed the upload limit: no member may be larger.
            cap = limits.max_file_bytes or info.file_size
            member = imaging.read_zip_member(archive, info, max_bytes=cap)
            data = ContentFile(member, name=parts[-1])
            if parts[0] == _CIFAR_BATCH_DIR and len(parts) == 3:
                batches.append((int(parts[1]), data))
            elif parts[0] == _CIFAR_META_DIR and len(parts) == 2:
                meta = data
    return images_from_cifar(
        [upload for _, upload in sorted(batches, key=lambda pair: pair[0])],
        meta=meta,
        limit_per_class=limit_per_class,
        limits=limits,
    )


def iri_files_from_zip(upload: File, *, limits: UploadLimits) -> dict[str, bytes]:
    """The files of an IRI set's zip by normalised path (iri_manifest.read_zip's safety rules)."""
    check_size(upload, limits)
    upload.seek(0)
    data = io.BytesIO(upload.read())
    try:
        with zipfile.ZipFile(data) as archive:
            if len(archive.infolist()) <= iri_manifest.DEFAULT_MAX_FILES:
                _check_total_pixels(archive, limits)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise imaging.ImageImportError(f"{upload.name}: not a readable zip file ({exc})") from exc
    data.seek(0)
    return iri_manifest.read_zip(
        data,
        max_member_bytes=limits.max_zip_member_bytes,
        max_total_bytes=limits.max_zip_total_bytes,
    )


def manifest_from_upload(
    upload: File, *, limits: UploadLimits
) -> tuple[bytes, iri_manifest.ManifestFormat]:
    """The manifest's bytes and its format (by extension: .csv or .json)."""
    check_size(upload, limits)
    try:
        manifest_format = iri_manifest.manifest_format_for(upload.name or "")
    except ValueError as exc:
        raise imaging.ImageImportError(str(exc)) from exc
    upload.seek(0)
    return upload.read(), manifest_format
