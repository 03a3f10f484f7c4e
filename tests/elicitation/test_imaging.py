import io
import os
import pickle
import stat
import struct
import zipfile
import zlib
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from elicitation.imaging import (
    CIFAR10_CLASSES,
    DEMO_CLASSES,
    MIDPOINT_STEPS,
    STANDARD_LAMBDAS,
    BaseImage,
    ImageImportError,
    MixSpec,
    decode_image,
    encode_png,
    generate_demo_images,
    load_cifar10_batches,
    load_image_folder,
    load_image_zip,
    midpoint_lambda,
    midpoint_series,
    mix,
    plan_mixup,
    render_mix,
)

# ---------------------------------------------------------------------------------------------
# helpers (fixtures are built from scratch in tmp_path; nothing is downloaded)
# ---------------------------------------------------------------------------------------------


def _solid(value: tuple[int, int, int], size: tuple[int, int] = (4, 3)) -> np.ndarray:
    height, width = size
    return np.broadcast_to(np.array(value, dtype=np.uint8), (height, width, 3)).copy()


def _image_bytes(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _gradient(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png_header_only(width: int, height: int) -> bytes:
    # A valid signature and IHDR claiming a huge canvas, then a token IDAT: the shape of a
    # decompression bomb as far as the header is concerned, a few dozen bytes on disk.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(64)))
        + chunk(b"IEND", b"")
    )


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _cifar_batch(labels: list[int], seed: int = 0) -> tuple[dict[bytes, object], np.ndarray]:
    data = np.random.default_rng(seed).integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    batch: dict[bytes, object] = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    return batch, data


def _pickle_to(path: Path, obj: object) -> Path:
    path.write_bytes(pickle.dumps(obj))
    return path


def _luminance_silhouette(pixels: np.ndarray, side: int = 8) -> np.ndarray:
    # Position- and scale-normalised silhouette: the shape is darker than its light background,
    # so threshold halfway between the border (background) and the darkest pixels, crop to the
    # shape's bounding box and resample to side x side.
    lum = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    border = np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]])
    background, figure = np.median(border), np.percentile(lum, 2)
    soft = np.clip((background - lum) / (background - figure), 0.0, 1.0)
    rows = np.flatnonzero((soft > 0.5).any(axis=1))
    cols = np.flatnonzero((soft > 0.5).any(axis=0))
    crop = soft[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    small = Image.fromarray((crop * 255).astype(np.uint8)).resize(
        (side, side), Image.Resampling.BOX
    )
    return np.asarray(small, dtype=np.float64).ravel() / 255.0


# ---------------------------------------------------------------------------------------------
# BaseImage
# ---------------------------------------------------------------------------------------------


def test_base_image_pixels_are_a_read_only_view_leaving_the_callers_array_writable() -> None:
    # given
    pixels = _solid((1, 2, 3))

    # when
    image = BaseImage(class_name="Cat", ref="7", pixels=pixels)

    # then
    assert image.pixels.flags.writeable is False
    assert pixels.flags.writeable is True
    assert np.shares_memory(image.pixels, pixels)
    with pytest.raises(ValueError, match="read-only"):
        image.pixels[0, 0, 0] = 9


def test_base_images_compare_by_class_and_ref() -> None:
    # given
    first = BaseImage(class_name="Cat", ref="7", pixels=_solid((1, 2, 3)))
    same_id = BaseImage(class_name="Cat", ref="7", pixels=_solid((9, 9, 9)))
    other = BaseImage(class_name="Cat", ref="8", pixels=_solid((1, 2, 3)))

    # when
    unique = {first, same_id, other}

    # then
    assert first == same_id
    assert first != other
    assert len(unique) == 2


@pytest.mark.parametrize(
    ("class_name", "ref", "pixels"),
    [
        ("Cat", "1", np.zeros((4, 4), dtype=np.uint8)),
        ("Cat", "1", np.zeros((4, 4, 4), dtype=np.uint8)),
        ("Cat", "1", np.zeros((4, 4, 3), dtype=np.float64)),
        ("Cat", "1", np.zeros((0, 4, 3), dtype=np.uint8)),
        ("", "1", np.zeros((4, 4, 3), dtype=np.uint8)),
        ("Cat", "", np.zeros((4, 4, 3), dtype=np.uint8)),
    ],
)
def test_base_image_rejects_invalid_input(class_name: str, ref: str, pixels: np.ndarray) -> None:
    # given / when / then
    with pytest.raises(ValueError):  # noqa: PT011 - several distinct messages
        BaseImage(class_name=class_name, ref=ref, pixels=pixels)


# ---------------------------------------------------------------------------------------------
# Demo generator
# ---------------------------------------------------------------------------------------------


def test_demo_classes_are_sorted_capitalised_single_words() -> None:
    # given / when
    classes = DEMO_CLASSES

    # then
    assert len(classes) >= 6
    assert list(classes) == sorted(classes)
    assert len(set(classes)) == len(classes)
    assert all(name.isalpha() and name[0].isupper() for name in classes)


def test_demo_generator_makes_per_class_instances_of_every_class() -> None:
    # given / when
    images = generate_demo_images(per_class=3, size=32, seed=0)

    # then
    assert [(i.class_name, i.ref) for i in images] == [
        (name, str(k)) for name in DEMO_CLASSES for k in range(3)
    ]
    assert all(i.pixels.shape == (32, 32, 3) and i.pixels.dtype == np.uint8 for i in images)


def test_demo_generator_is_byte_identical_for_the_same_seed() -> None:
    # given
    first = generate_demo_images(per_class=4, seed=11)

    # when
    second = generate_demo_images(per_class=4, seed=11)

    # then
    assert [i.pixels.tobytes() for i in first] == [i.pixels.tobytes() for i in second]
    assert [encode_png(i.pixels) for i in first] == [encode_png(i.pixels) for i in second]


def test_demo_generator_differs_between_seeds() -> None:
    # given
    first = generate_demo_images(per_class=4, seed=0)

    # when
    second = generate_demo_images(per_class=4, seed=1)

    # then
    differing = sum(
        not np.array_equal(a.pixels, b.pixels) for a, b in zip(first, second, strict=True)
    )
    assert differing == len(first)


def test_demo_instances_do_not_change_when_the_set_grows() -> None:
    # given
    small = generate_demo_images(per_class=2, seed=5)

    # when
    large = generate_demo_images(per_class=6, seed=5)

    # then
    large_by_id = {(i.class_name, i.ref): i.pixels for i in large}
    assert all(np.array_equal(i.pixels, large_by_id[(i.class_name, i.ref)]) for i in small)


def test_demo_instances_within_a_class_vary() -> None:
    # given / when
    images = generate_demo_images(per_class=8, seed=0)

    # then
    for name in DEMO_CLASSES:
        members = [i.pixels.tobytes() for i in images if i.class_name == name]
        assert len(set(members)) == 8


@pytest.mark.parametrize("size", [16, 32, 48])
def test_demo_generator_honours_size(size: int) -> None:
    # given / when
    images = generate_demo_images(per_class=1, size=size, seed=0)

    # then
    assert {i.pixels.shape for i in images} == {(size, size, 3)}


@pytest.mark.parametrize(
    "kwargs", [{"per_class": 0}, {"size": 8}, {"seed": -1}], ids=["per_class", "size", "seed"]
)
def test_demo_generator_rejects_bad_arguments(kwargs: dict[str, int]) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="must be"):
        generate_demo_images(**kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_classes_are_visually_distinct_for_a_nearest_centroid_classifier(seed: int) -> None:
    # given: even instances train one centroid per class, odd instances are held out
    images = generate_demo_images(per_class=20, seed=seed)
    train = [i for i in images if int(i.ref) % 2 == 0]
    test = [i for i in images if int(i.ref) % 2 == 1]
    centroids = {
        name: np.mean([_luminance_silhouette(i.pixels) for i in train if i.class_name == name], 0)
        for name in DEMO_CLASSES
    }

    def nearest(pixels: np.ndarray) -> str:
        features = _luminance_silhouette(pixels)
        return min(centroids, key=lambda name: float(np.linalg.norm(features - centroids[name])))

    # when
    predictions = [nearest(i.pixels) for i in test]

    # then
    accuracy = np.mean([p == i.class_name for p, i in zip(predictions, test, strict=True)])
    assert accuracy >= 0.9


# ---------------------------------------------------------------------------------------------
# encode / decode
# ---------------------------------------------------------------------------------------------


def test_encode_png_round_trips_exactly_and_deterministically() -> None:
    # given
    pixels = _gradient(seed=3, size=9)

    # when
    data = encode_png(pixels)

    # then
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data == encode_png(pixels.copy())
    assert np.array_equal(decode_image(data, max_pixels=81), pixels)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4), dtype=np.uint8), np.zeros((4, 4, 3), dtype=np.int16)],
    ids=["2d", "int16"],
)
def test_encode_png_rejects_non_rgb_uint8(pixels: np.ndarray) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="pixels must be"):
        encode_png(pixels)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, I am text", "not a readable image"),
        (encode_png(_gradient(seed=1, size=16))[:400], "not a valid image"),
        (_png_header_only(100_000, 100_000), "refused as a decompression bomb"),
        (_png_header_only(5_000, 5_000), "exceeds the limit"),
    ],
    ids=["text", "truncated", "pillow-bomb-limit", "own-pixel-limit"],
)
def test_decode_image_refuses_bad_bytes(data: bytes, reason: str) -> None:
    # given / when / then
    with pytest.raises(ImageImportError, match=reason):
        decode_image(data)


def test_decode_image_treats_pillows_bomb_warning_as_an_error() -> None:
    # given: 10^8 pixels is above Pillow's warning threshold (~89 Mpx) but below its hard error,
    # and the caller's own limit is higher still
    data = _png_header_only(10_000, 10_000)

    # when / then
    with pytest.raises(ImageImportError, match="refused as a decompression bomb"):
        decode_image(data, max_pixels=10**9)


def test_decode_image_obeys_a_small_pixel_limit() -> None:
    # given
    data = encode_png(_gradient(seed=1, size=8))

    # when / then
    with pytest.raises(ImageImportError, match="64 pixels exceeds the limit of 63"):
        decode_image(data, max_pixels=63)


def test_decode_image_refuses_formats_outside_the_allow_list() -> None:
    # given: an EPS header (Pillow's EPS plugin would shell out to Ghostscript)
    data = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"

    # when / then
    with pytest.raises(ImageImportError, match="not a readable image"):
        decode_image(data)


def test_decode_image_flattens_transparency_onto_white() -> None:
    # given
    rgba = np.array([[[0, 0, 255, 255], [255, 0, 0, 0]]], dtype=np.uint8)
    data = _image_bytes(rgba, "PNG")

    # when
    pixels = decode_image(data)

    # then
    assert pixels.tolist() == [[[0, 0, 255], [255, 255, 255]]]


def test_decode_image_scales_16_bit_greyscale_to_8_bits() -> None:
    # given
    wide = np.array([[0x0000, 0x8000, 0xFFFF]], dtype=np.uint16)
    data = _image_bytes(wide, "PNG")

    # when
    pixels = decode_image(data)

    # then
    assert pixels[0, :, 0].tolist() == [0, 128, 255]
    assert np.array_equal(pixels[..., 0], pixels[..., 2])


# ---------------------------------------------------------------------------------------------
# Folder importer
# ---------------------------------------------------------------------------------------------


def test_load_image_folder_reads_classes_sorted_and_images_in_natural_order(
    tmp_path: Path,
) -> None:
    # given
    cat = [_gradient(seed) for seed in range(3)]
    _write(tmp_path / "Dog" / "a_b.PNG", encode_png(_solid((9, 8, 7))))
    _write(tmp_path / "Cat" / "10.png", encode_png(cat[2]))
    _write(tmp_path / "Cat" / "2.bmp", _image_bytes(cat[1], "BMP"))
    _write(tmp_path / "Cat" / "1.WebP", _image_bytes(cat[0], "WEBP", lossless=True))
    _write(tmp_path / "Cat" / "notes.txt", b"not an image, ignored")
    _write(tmp_path / "Cat" / ".hidden.png", b"ignored")
    _write(tmp_path / "Cat" / "deeper" / "x.png", b"subfolders are not searched")
    _write(tmp_path / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    _write(tmp_path / "__MACOSX" / "Cat" / "._1.png", b"resource fork")
    _write(tmp_path / "stray.png", b"files at the top level are ignored")

    # when
    images = load_image_folder(tmp_path)

    # then
    assert [(i.class_name, i.ref) for i in images] == [
        ("Cat", "1"),
        ("Cat", "2"),
        ("Cat", "10"),
        ("Dog", "a-b"),
    ]
    assert all(np.array_equal(i.pixels, p) for i, p in zip(images[:3], cat, strict=True))
    assert images[3].pixels[0, 0].tolist() == [9, 8, 7]


@pytest.mark.parametrize("suffix", [".jpg", ".JPEG", ".webp"])
def test_load_image_folder_accepts_lossy_formats(tmp_path: Path, suffix: str) -> None:
    # given
    fmt = "WEBP" if suffix == ".webp" else "JPEG"
    _write(tmp_path / "Cat" / f"1{suffix}", _image_bytes(_solid((200, 40, 40), (16, 16)), fmt))

    # when
    images = load_image_folder(tmp_path)

    # then
    assert [(i.class_name, i.ref) for i in images] == [("Cat", "1")]
    assert images[0].pixels.shape == (16, 16, 3)
    assert np.abs(images[0].pixels.astype(int) - [200, 40, 40]).max() <= 8


def test_load_image_folder_converts_greyscale_to_rgb(tmp_path: Path) -> None:
    # given
    grey = np.full((5, 6), 77, dtype=np.uint8)
    _write(tmp_path / "Cat" / "1.png", _image_bytes(grey, "PNG"))

    # when
    images = load_image_folder(tmp_path)

    # then
    assert images[0].pixels.shape == (5, 6, 3)
    assert set(images[0].pixels.ravel().tolist()) == {77}


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("truncated.png", encode_png(_gradient(seed=1, size=16))[:400], "not a valid image"),
        ("text.png", b"just some text, renamed", "not a readable image"),
        ("bomb.png", _png_header_only(100_000, 100_000), "refused as a decompression bomb"),
        ("big.png", _png_header_only(5_000, 5_000), "exceeds the limit of 16777216"),
    ],
    ids=["truncated", "text-renamed", "pillow-bomb", "header-over-limit"],
)
def test_load_image_folder_names_the_offending_file(
    tmp_path: Path, name: str, data: bytes, reason: str
) -> None:
    # given
    _write(tmp_path / "Cat" / "1.png", encode_png(_gradient(seed=0)))
    _write(tmp_path / "Dog" / name, data)

    # when
    with pytest.raises(ImageImportError) as caught:
        load_image_folder(tmp_path)

    # then
    assert str(caught.value).startswith(f"Dog/{name}: ")
    assert reason in str(caught.value)


def test_load_image_folder_obeys_max_pixels(tmp_path: Path) -> None:
    # given
    _write(tmp_path / "Cat" / "1.png", encode_png(_gradient(seed=0, size=8)))

    # when / then
    with pytest.raises(ImageImportError, match=r"^Cat/1\.png: 8x8 = 64 pixels exceeds"):
        load_image_folder(tmp_path, max_pixels=63)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "has no class folders"),
        ({"a.png": b""}, "has no class folders"),
        ({".hidden/a.png": b""}, "has no class folders"),
        ({"Cat/readme.txt": b"x"}, "Cat/: class folder contains no images"),
    ],
    ids=["empty", "files-only", "hidden-only", "class-without-images"],
)
def test_load_image_folder_rejects_bad_layouts(
    tmp_path: Path, layout: dict[str, bytes], message: str
) -> None:
    # given
    for relative, data in layout.items():
        _write(tmp_path / relative, data)

    # when / then
    with pytest.raises(ImageImportError, match=message):
        load_image_folder(tmp_path)


def test_load_image_folder_rejects_a_missing_root(tmp_path: Path) -> None:
    # given / when / then
    with pytest.raises(ImageImportError, match="is not a folder"):
        load_image_folder(tmp_path / "nope")


def test_load_image_folder_rejects_duplicate_refs_in_a_class(tmp_path: Path) -> None:
    # given
    _write(tmp_path / "Cat" / "1.png", encode_png(_gradient(seed=0)))
    _write(tmp_path / "Cat" / "1.bmp", _image_bytes(_gradient(seed=1), "BMP"))

    # when / then
    with pytest.raises(ImageImportError, match="same image id '1'"):
        load_image_folder(tmp_path)


def test_load_image_folder_rejects_classes_that_collide_after_sanitising(tmp_path: Path) -> None:
    # given
    _write(tmp_path / "golden_retriever" / "1.png", encode_png(_gradient(seed=0)))
    _write(tmp_path / "golden-retriever" / "2.png", encode_png(_gradient(seed=1)))

    # when / then
    with pytest.raises(ImageImportError, match="both become class 'golden-retriever'"):
        load_image_folder(tmp_path)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_load_image_folder_refuses_symlinks_leaving_the_folder(tmp_path: Path) -> None:
    # given
    outside = _write(tmp_path / "outside" / "secret.png", encode_png(_gradient(seed=0)))
    root = tmp_path / "root"
    (root / "Cat").mkdir(parents=True)
    (root / "Cat" / "1.png").symlink_to(outside)

    # when / then
    with pytest.raises(ImageImportError, match=r"^Cat/1\.png: links outside the image folder"):
        load_image_folder(root)


# ---------------------------------------------------------------------------------------------
# Zip importer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "my_set/"], ids=["flat", "top-level-folder"])
def test_load_image_zip_reads_the_class_layout(tmp_path: Path, prefix: str) -> None:
    # given
    cat, dog = _gradient(seed=1), _gradient(seed=2)
    data = _zip_bytes(
        {
            f"{prefix}Dog/7.png": encode_png(dog),
            f"{prefix}Cat/3.png": encode_png(cat),
            f"{prefix}Cat/.DS_Store": b"junk",
            f"{prefix}README.txt": b"ignored",
            f"__MACOSX/{prefix}Cat/._3.png": b"resource fork",
        }
    )
    path = _write(tmp_path / "set.zip", data)

    # when
    images = load_image_zip(path)

    # then
    assert [(i.class_name, i.ref) for i in images] == [("Cat", "3"), ("Dog", "7")]
    assert np.array_equal(images[0].pixels, cat)
    assert np.array_equal(images[1].pixels, dog)


def test_load_image_zip_accepts_a_file_object_and_a_str_path(tmp_path: Path) -> None:
    # given
    data = _zip_bytes({"Cat/1.png": encode_png(_gradient(seed=1))})
    path = _write(tmp_path / "set.zip", data)

    # when
    from_object = load_image_zip(io.BytesIO(data))
    from_str = load_image_zip(str(path))

    # then
    assert [(i.class_name, i.ref) for i in from_object] == [("Cat", "1")]
    assert [(i.class_name, i.ref) for i in from_str] == [("Cat", "1")]


@pytest.mark.parametrize(
    "member",
    ["../evil.png", "Cat/../../evil.png", "/etc/Cat/evil.png", "C:/Cat/evil.png", "..\\evil.png"],
)
def test_load_image_zip_refuses_zip_slip(member: str) -> None:
    # given
    data = _zip_bytes({"Cat/1.png": encode_png(_gradient(seed=1)), member: b"x"})

    # when / then
    with pytest.raises(ImageImportError, match="unsafe path in zip"):
        load_image_zip(io.BytesIO(data))


def test_load_image_zip_refuses_symlink_members() -> None:
    # given
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("Cat/1.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")

    # when / then
    with pytest.raises(ImageImportError, match=r"Cat/1\.png: symbolic links are not allowed"):
        load_image_zip(io.BytesIO(buffer.getvalue()))


def test_load_image_zip_caps_the_member_count() -> None:
    # given
    data = _zip_bytes({f"Cat/{k}.png": encode_png(_gradient(seed=k)) for k in range(3)})

    # when / then
    with pytest.raises(ImageImportError, match="3 entries, more than the limit of 2"):
        load_image_zip(io.BytesIO(data), max_members=2)


def test_load_image_zip_caps_the_uncompressed_size() -> None:
    # given: 2 MB of zeros deflate to a few kB, the shape of a zip bomb
    data = _zip_bytes({"Cat/1.png": bytes(2_000_000)})

    # when / then
    with pytest.raises(ImageImportError, match="possible zip bomb"):
        load_image_zip(io.BytesIO(data), max_total_bytes=1_000_000)


def test_load_image_zip_names_a_broken_member() -> None:
    # given
    data = _zip_bytes({"Cat/1.png": encode_png(_gradient(seed=1)), "Dog/2.png": b"text"})

    # when / then
    with pytest.raises(ImageImportError, match=r"^Dog/2\.png: not a readable image"):
        load_image_zip(io.BytesIO(data))


def test_load_image_zip_reports_a_corrupted_member() -> None:
    # given: a stored (uncompressed) member with one payload byte flipped fails its CRC
    payload = encode_png(_gradient(seed=1, size=16))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("Cat/1.png", payload)
    raw = bytearray(buffer.getvalue())
    offset = raw.index(payload) + len(payload) // 2
    raw[offset] ^= 0xFF

    # when / then
    with pytest.raises(ImageImportError, match=r"^Cat/1\.png: corrupt zip entry"):
        load_image_zip(io.BytesIO(bytes(raw)))


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"readme.txt": b"x"}, "zip contains no images"),
        ({"Cat/1.png": b"", "loose.png": b""}, "loose.png: expected <class>/<image>"),
        ({"a/Cat/1.png": b"", "b/Dog/1.png": b""}, "expected <class>/<image>"),
        ({"a/b/Cat/1.png": b""}, "expected <class>/<image>"),
    ],
    ids=["no-images", "mixed-depth", "two-top-folders", "too-deep"],
)
def test_load_image_zip_rejects_bad_layouts(members: dict[str, bytes], message: str) -> None:
    # given
    data = _zip_bytes(members)

    # when / then
    with pytest.raises(ImageImportError, match=message):
        load_image_zip(io.BytesIO(data))


def test_load_image_zip_rejects_a_non_zip(tmp_path: Path) -> None:
    # given
    path = _write(tmp_path / "set.zip", b"definitely not a zip")

    # when / then
    with pytest.raises(ImageImportError, match="not a readable zip file"):
        load_image_zip(path)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 batches
# ---------------------------------------------------------------------------------------------


def test_load_cifar10_batches_lays_out_planes_as_rows_columns_channels(tmp_path: Path) -> None:
    # given: row 1, green plane, image row 4, column 7 holds a marker value
    batch, data = _cifar_batch([3, 5, 3, 0, 9, 3])
    data[1, 1 * 1024 + 4 * 32 + 7] = 201
    path = _pickle_to(tmp_path / "test_batch", batch)

    # when
    images = load_cifar10_batches([path])

    # then
    assert images[1].pixels.shape == (32, 32, 3)
    assert int(images[1].pixels[4, 7, 1]) == 201
    for row in range(len(images)):
        for channel, y, x in [(0, 0, 0), (2, 31, 0), (1, 0, 31), (0, 17, 9)]:
            assert images[row].pixels[y, x, channel] == data[row, channel * 1024 + y * 32 + x]


def test_load_cifar10_batches_uses_default_names_and_batch_indices(tmp_path: Path) -> None:
    # given
    batch, _ = _cifar_batch([3, 5, 3, 0, 9, 3])
    path = _pickle_to(tmp_path / "test_batch", batch)

    # when
    images = load_cifar10_batches([path])

    # then
    assert CIFAR10_CLASSES[0] == "Airplane"
    assert [(i.class_name, i.ref) for i in images] == [
        ("Cat", "0"),
        ("Dog", "1"),
        ("Cat", "2"),
        ("Airplane", "3"),
        ("Truck", "4"),
        ("Cat", "5"),
    ]


def test_load_cifar10_batches_reads_label_names_from_meta(tmp_path: Path) -> None:
    # given
    batch, _ = _cifar_batch([0, 1, 2])
    path = _pickle_to(tmp_path / "test_batch", batch)
    meta = _pickle_to(
        tmp_path / "batches.meta",
        {b"label_names": [b"apple", b"maple_tree", b"iPhone"], b"num_vis": 3072},
    )

    # when
    images = load_cifar10_batches([path], meta_path=meta)

    # then
    assert [i.class_name for i in images] == ["Apple", "Maple-tree", "IPhone"]


def test_load_cifar10_batches_limits_per_class_keeping_the_first(tmp_path: Path) -> None:
    # given
    batch, _ = _cifar_batch([3, 5, 3, 0, 9, 3, 5])
    path = _pickle_to(tmp_path / "test_batch", batch)

    # when
    images = load_cifar10_batches([path], limit_per_class=1)

    # then
    assert [(i.class_name, i.ref) for i in images] == [
        ("Cat", "0"),
        ("Dog", "1"),
        ("Airplane", "3"),
        ("Truck", "4"),
    ]


def test_load_cifar10_batches_counts_refs_across_files(tmp_path: Path) -> None:
    # given
    first, _ = _cifar_batch([1, 2], seed=1)
    second, second_data = _cifar_batch([3, 4, 5], seed=2)
    paths = [
        _pickle_to(tmp_path / "data_batch_1", first),
        _pickle_to(tmp_path / "data_batch_2", second),
    ]

    # when
    images = load_cifar10_batches(paths)

    # then
    assert [i.ref for i in images] == ["0", "1", "2", "3", "4"]
    assert images[2].pixels[0, 0].tolist() == second_data[0, [0, 1024, 2048]].tolist()


def test_load_cifar10_batches_accepts_str_keys(tmp_path: Path) -> None:
    # given
    batch, _ = _cifar_batch([7])
    path = _pickle_to(tmp_path / "batch", {k.decode(): v for k, v in batch.items()})

    # when
    images = load_cifar10_batches([path])

    # then
    assert [(i.class_name, i.ref) for i in images] == [("Horse", "0")]


def _malformed_batches() -> list[tuple[object, str]]:
    good, data = _cifar_batch([1, 2])
    return [
        ({b"labels": [1, 2]}, "missing 'data'"),
        ({b"data": data}, "missing 'labels'"),
        ({**good, b"data": data[:, :100]}, r"shape \(N, 3072\)"),
        ({**good, b"data": data.astype(np.float32)}, "uint8 numpy array"),
        ({**good, b"data": data.tolist()}, "uint8 numpy array"),
        ({**good, b"labels": [1]}, "1 labels for 2 images"),
        ({**good, b"labels": [1, 10]}, "row 1 has label 10, outside 0..9"),
        ({**good, b"labels": [1, -1]}, "row 1 has label -1"),
        ({**good, b"labels": ["a", "b"]}, "list of integers"),
        ({**good, b"data": data[:0], b"labels": []}, "batch has no images"),
        ([1, 2, 3], "expected a pickled dict, got list"),
    ]


@pytest.mark.parametrize(("content", "message"), _malformed_batches())
def test_load_cifar10_batches_rejects_malformed_batches(
    tmp_path: Path, content: object, message: str
) -> None:
    # given
    path = _pickle_to(tmp_path / "test_batch", content)

    # when / then
    with pytest.raises(ImageImportError, match=message):
        load_cifar10_batches([path])


@pytest.mark.parametrize("raw", [b"not a pickle at all", b""], ids=["garbage", "empty-file"])
def test_load_cifar10_batches_rejects_non_pickles(tmp_path: Path, raw: bytes) -> None:
    # given
    path = _write(tmp_path / "test_batch", raw)

    # when / then
    with pytest.raises(ImageImportError, match="not a CIFAR-10 python batch"):
        load_cifar10_batches([path])


def test_load_cifar10_batches_rejects_bad_meta(tmp_path: Path) -> None:
    # given
    batch, _ = _cifar_batch([0])
    path = _pickle_to(tmp_path / "test_batch", batch)
    meta = _pickle_to(tmp_path / "batches.meta", {b"label_names": [b"cat", b"Cat"]})

    # when / then
    with pytest.raises(ImageImportError, match="duplicate label names"):
        load_cifar10_batches([path], meta_path=meta)


def test_load_cifar10_batches_rejects_bad_arguments(tmp_path: Path) -> None:
    # given
    batch, _ = _cifar_batch([0])
    path = _pickle_to(tmp_path / "test_batch", batch)

    # when / then
    with pytest.raises(ImageImportError, match="no CIFAR-10 batch files given"):
        load_cifar10_batches([])
    with pytest.raises(ValueError, match="limit_per_class must be at least 1"):
        load_cifar10_batches([path], limit_per_class=0)


# ---------------------------------------------------------------------------------------------
# mix
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "lam", "expected"),
    [
        (200, 100, 0.25, 125),
        (255, 0, 0.25, 64),  # 63.75
        (0, 255, 0.25, 191),  # 191.25
        (3, 0, 0.5, 2),  # 1.5 -> 2 (half to even)
        (5, 0, 0.5, 2),  # 2.5 -> 2 (half to even)
        (7, 0, 0.5, 4),  # 3.5 -> 4 (half to even)
        (15, 0, 0.1, 2),  # 1.5 exactly
        (0, 15, 0.9, 2),  # (1 - 0.9) * 15 = 1.4999999999999996 in float64, still the 1.5 tie
        (255, 255, 0.75, 255),
        (10, 20, 0.0, 20),
        (10, 20, 1.0, 10),
    ],
)
def test_mix_of_constant_images_gives_the_exact_pixel(
    a: int, b: int, lam: float, expected: int
) -> None:
    # given
    img1, img2 = _solid((a, a, a)), _solid((b, b, b))

    # when
    mixed = mix(img1, img2, lam)

    # then
    assert mixed.dtype == np.uint8
    assert mixed.shape == img1.shape
    assert set(mixed.ravel().tolist()) == {expected}


def test_mix_weights_each_channel_independently() -> None:
    # given
    img1 = _solid((200, 0, 40), (1, 1))
    img2 = _solid((0, 100, 80), (1, 1))

    # when
    mixed = mix(img1, img2, 0.25)

    # then
    assert mixed[0, 0].tolist() == [50, 75, 70]


_GRID = [step / 10 for step in range(11)] + list(STANDARD_LAMBDAS)
_IMAGES = arrays(np.uint8, (3, 4, 3))


@settings(max_examples=200, deadline=None)
@given(img1=_IMAGES, img2=_IMAGES, lam=st.sampled_from(_GRID))
def test_mix_is_symmetric_on_the_lambda_grid(
    img1: np.ndarray, img2: np.ndarray, lam: float
) -> None:
    # given / when
    forward = mix(img1, img2, lam)
    backward = mix(img2, img1, 1 - lam)

    # then
    assert np.array_equal(forward, backward)


@settings(max_examples=200, deadline=None)
@given(
    img1=_IMAGES,
    img2=_IMAGES,
    lam=st.integers(0, 10**6).map(lambda k: k / 10**6),
)
def test_mix_is_symmetric_for_six_decimal_lambdas(
    img1: np.ndarray, img2: np.ndarray, lam: float
) -> None:
    # given / when
    forward = mix(img1, img2, lam)
    backward = mix(img2, img1, 1 - lam)

    # then
    assert np.array_equal(forward, backward)


@settings(max_examples=100, deadline=None)
@given(img1=_IMAGES, img2=_IMAGES, lam=st.floats(0.0, 1.0))
def test_mix_stays_within_half_a_level_of_the_exact_blend(
    img1: np.ndarray, img2: np.ndarray, lam: float
) -> None:
    # given
    exact = lam * img1.astype(np.float64) + (1 - lam) * img2.astype(np.float64)

    # when
    mixed = mix(img1, img2, lam)

    # then
    assert np.abs(mixed - exact).max() <= 0.5 + 1e-6
    assert np.all(mixed >= np.minimum(img1, img2))
    assert np.all(mixed <= np.maximum(img1, img2))


@pytest.mark.parametrize("lam", [-0.1, 1.0000001, float("nan"), float("inf")])
def test_mix_rejects_lambda_outside_the_unit_interval(lam: float) -> None:
    # given / when / then
    with pytest.raises(ValueError, match=r"λ must be in \[0, 1\]"):
        mix(_solid((1, 1, 1)), _solid((2, 2, 2)), lam)


def test_mix_rejects_mismatched_shapes() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="same shape"):
        mix(_solid((1, 1, 1), (4, 4)), _solid((2, 2, 2), (4, 5)), 0.5)


def test_mix_rejects_non_uint8_images() -> None:
    # given / when / then
    with pytest.raises(ValueError, match="uint8"):
        mix(np.zeros((2, 2, 3), dtype=np.float64), _solid((2, 2, 2), (2, 2)), 0.5)


# ---------------------------------------------------------------------------------------------
# midpoint series
# ---------------------------------------------------------------------------------------------


def test_midpoint_series_has_eleven_integer_indexed_steps() -> None:
    # given
    img1, img2 = _gradient(seed=1), _gradient(seed=2)

    # when
    series = midpoint_series(img1, img2)

    # then
    assert len(series) == MIDPOINT_STEPS == 11
    assert np.array_equal(series[0], img2)
    assert np.array_equal(series[10], img1)
    assert all(np.array_equal(series[step], mix(img1, img2, step / 10)) for step in range(11))


@pytest.mark.parametrize(
    ("step", "expected"), [(0, "0.0"), (1, "0.1"), (3, "0.3"), (6, "0.6"), (7, "0.7"), (10, "1.0")]
)
def test_midpoint_lambda_is_step_over_ten(step: int, expected: str) -> None:
    # given / when
    lam = midpoint_lambda(step)

    # then
    assert repr(lam) == expected


@pytest.mark.parametrize(
    ("step", "error"), [(-1, ValueError), (11, ValueError), (0.5, TypeError), (True, TypeError)]
)
def test_midpoint_lambda_rejects_non_steps(step: object, error: type[Exception]) -> None:
    # given / when / then
    with pytest.raises(error, match="step must be"):
        midpoint_lambda(step)


# ---------------------------------------------------------------------------------------------
# MixSpec
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "key"),
    [
        (0.25, "mixed_0.25_Cat_12_Dog_40.png"),
        (0.5, "mixed_0.5_Cat_12_Dog_40.png"),
        (0.1, "mixed_0.1_Cat_12_Dog_40.png"),
        (0.75, "mixed_0.75_Cat_12_Dog_40.png"),
        (0.9, "mixed_0.9_Cat_12_Dog_40.png"),
        (0, "mixed_0.0_Cat_12_Dog_40.png"),
        (1, "mixed_1.0_Cat_12_Dog_40.png"),
        (1 - 0.9, "mixed_0.1_Cat_12_Dog_40.png"),
        (0.6000000000000001, "mixed_0.6_Cat_12_Dog_40.png"),
        (np.float64(0.25), "mixed_0.25_Cat_12_Dog_40.png"),
    ],
)
def test_mix_spec_key_matches_the_published_file_names(lam: float, key: str) -> None:
    # given
    spec = MixSpec(class1="Cat", ref1="12", class2="Dog", ref2="40", lam=lam)

    # when
    result = spec.key

    # then
    assert result == key


def test_mix_spec_key_reproduces_a_published_h_mix_name() -> None:
    # given
    spec = MixSpec(class1="Cat", ref1="4346", class2="Truck", ref2="4932", lam=0.25)

    # when / then
    assert spec.key == "mixed_0.25_Cat_4346_Truck_4932.png"


@pytest.mark.parametrize(
    ("lam", "label"), [(0.25, (0.25, 0.75)), (0.9, (0.9, 0.1)), (0.0, (0.0, 1.0)), (1, (1.0, 0.0))]
)
def test_mix_spec_mixup_label_weights_class1_by_lambda(
    lam: float, label: tuple[float, float]
) -> None:
    # given
    spec = MixSpec(class1="Cat", ref1="1", class2="Dog", ref2="2", lam=lam)

    # when / then
    assert spec.mixup_label == label
    assert sum(spec.mixup_label) == 1.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"class1": "Dog", "class2": "Cat"}, "class1 must sort before class2"),
        ({"class1": "Cat", "class2": "Cat"}, "class1 must sort before class2"),
        ({"class1": "Big_Cat"}, "must not contain '_'"),
        ({"ref2": "a_b"}, "must not contain '_'"),
        ({"ref1": "x/y"}, "must not contain"),
        ({"ref1": ""}, "non-empty"),
        ({"lam": 1.5}, r"λ must be in \[0, 1\]"),
    ],
)
def test_mix_spec_rejects_invalid_fields(fields: dict[str, object], message: str) -> None:
    # given
    values: dict[str, object] = {
        "class1": "Cat",
        "ref1": "1",
        "class2": "Dog",
        "ref2": "2",
        "lam": 0.5,
    }
    values.update(fields)

    # when / then
    with pytest.raises(ValueError, match=message):
        MixSpec(**values)


def test_render_mix_mixes_the_named_images_in_spec_order() -> None:
    # given
    cat = BaseImage(class_name="Cat", ref="1", pixels=_solid((200, 200, 200)))
    dog = BaseImage(class_name="Dog", ref="2", pixels=_solid((100, 100, 100)))
    spec = MixSpec(class1="Cat", ref1="1", class2="Dog", ref2="2", lam=0.25)

    # when
    pixels = render_mix(spec, cat, dog)

    # then
    assert set(pixels.ravel().tolist()) == {125}
    with pytest.raises(ValueError, match="img1 is Dog/2, but the spec names Cat/1"):
        render_mix(spec, dog, cat)


# ---------------------------------------------------------------------------------------------
# plan_mixup
# ---------------------------------------------------------------------------------------------


def _pairs(specs: list[MixSpec], per_pair: int) -> list[MixSpec]:
    return specs[::per_pair]


def test_plan_mixup_is_deterministic_and_seed_dependent() -> None:
    # given
    images = generate_demo_images(per_class=4, seed=0)

    # when
    first = plan_mixup(images, lambdas=[0.25, 0.75], n_pairs=10, seed=3)
    again = plan_mixup(images, lambdas=[0.25, 0.75], n_pairs=10, seed=3)
    other = plan_mixup(images, lambdas=[0.25, 0.75], n_pairs=10, seed=4)

    # then
    assert first == again
    assert first != other


def test_plan_mixup_does_not_depend_on_the_order_of_the_images() -> None:
    # given
    images = generate_demo_images(per_class=4, seed=0)
    shuffled = [images[i] for i in np.random.default_rng(9).permutation(len(images))]

    # when
    plan = plan_mixup(images, lambdas=[0.5], n_pairs=12, seed=1)
    plan_shuffled = plan_mixup(shuffled, lambdas=[0.5], n_pairs=12, seed=1)

    # then
    assert plan == plan_shuffled


def test_plan_mixup_makes_one_spec_per_lambda_per_pair_with_image1_first_alphabetically() -> None:
    # given
    images = generate_demo_images(per_class=8, seed=0)
    lambdas = list(STANDARD_LAMBDAS)

    # when
    plan = plan_mixup(images, lambdas=lambdas, n_pairs=6, seed=0)

    # then
    assert len(plan) == 6 * len(lambdas)
    for start in range(0, len(plan), len(lambdas)):
        group = plan[start : start + len(lambdas)]
        assert [s.lam for s in group] == lambdas
        assert len({(s.class1, s.ref1, s.class2, s.ref2) for s in group}) == 1
    assert all(s.class1 < s.class2 for s in plan)
    assert len({s.key for s in plan}) == len(plan)


def test_plan_mixup_uses_every_class_pair_exactly_once_before_repeating() -> None:
    # given
    images = generate_demo_images(per_class=8, seed=0)
    all_pairs = set(combinations(DEMO_CLASSES, 2))

    # when
    plan = plan_mixup(images, lambdas=[0.5], n_pairs=len(all_pairs), seed=7)

    # then
    assert Counter((s.class1, s.class2) for s in plan) == dict.fromkeys(all_pairs, 1)


@pytest.mark.parametrize("n_pairs", [29, 45, 60, 84])
def test_plan_mixup_spreads_class_pairs_evenly(n_pairs: int) -> None:
    # given
    images = generate_demo_images(per_class=8, seed=0)
    all_pairs = list(combinations(DEMO_CLASSES, 2))

    # when
    plan = plan_mixup(images, lambdas=[0.5], n_pairs=n_pairs, seed=2)

    # then
    counts = Counter((s.class1, s.class2) for s in plan)
    full_rounds, rest = divmod(n_pairs, len(all_pairs))
    assert sorted(counts[p] for p in all_pairs) == sorted(
        [full_rounds] * (len(all_pairs) - rest) + [full_rounds + 1] * rest
    )
    assert {(s.class1, s.class2) for s in plan[: len(all_pairs)]} == set(all_pairs)


def test_plan_mixup_never_reuses_an_image_when_it_can_avoid_it() -> None:
    # given: each class takes part in 7 of the 28 pairs and has 8 images
    images = generate_demo_images(per_class=8, seed=0)

    # when
    plan = plan_mixup(images, lambdas=[0.1, 0.9], n_pairs=28, seed=5)

    # then
    pairs = _pairs(plan, per_pair=2)
    uses = Counter([(s.class1, s.ref1) for s in pairs] + [(s.class2, s.ref2) for s in pairs])
    assert max(uses.values()) == 1


def test_plan_mixup_spreads_reuse_evenly_when_images_run_out() -> None:
    # given: 7 appearances per class but only 2 images per class
    images = generate_demo_images(per_class=2, seed=0)

    # when
    plan = plan_mixup(images, lambdas=[0.5], n_pairs=28, seed=5)

    # then
    uses = Counter([(s.class1, s.ref1) for s in plan] + [(s.class2, s.ref2) for s in plan])
    for name in DEMO_CLASSES:
        assert sorted(uses[(name, ref)] for ref in ("0", "1")) == [3, 4]
    assert len({s.key for s in plan}) == 28


def test_plan_mixup_refuses_when_distinct_image_pairs_run_out() -> None:
    # given
    images = [
        BaseImage(class_name="Cat", ref="1", pixels=_solid((1, 1, 1))),
        BaseImage(class_name="Dog", ref="1", pixels=_solid((2, 2, 2))),
    ]

    # when / then
    assert len(plan_mixup(images, lambdas=[0.5], n_pairs=1, seed=0)) == 1
    with pytest.raises(ValueError, match="not enough images for 2 distinct pairs"):
        plan_mixup(images, lambdas=[0.5], n_pairs=2, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lambdas": []}, "lambdas must not be empty"),
        ({"lambdas": [0.5, 0.5]}, "lambdas must be distinct"),
        ({"lambdas": [1.5]}, r"λ must be in \[0, 1\]"),
        ({"n_pairs": 0}, "n_pairs must be at least 1"),
    ],
)
def test_plan_mixup_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    # given
    images = generate_demo_images(per_class=2, seed=0)
    arguments: dict[str, object] = {"lambdas": [0.5], "n_pairs": 1, "seed": 0}
    arguments.update(kwargs)

    # when / then
    with pytest.raises(ValueError, match=message):
        plan_mixup(images, **arguments)


@pytest.mark.parametrize(
    "images",
    [
        [],
        [BaseImage(class_name="Cat", ref=str(k), pixels=_solid((k, k, k))) for k in range(3)],
    ],
    ids=["none", "one-class"],
)
def test_plan_mixup_needs_two_classes(images: list[BaseImage]) -> None:
    # given / when / then
    with pytest.raises(ValueError, match="at least 2 classes"):
        plan_mixup(images, lambdas=[0.5], n_pairs=1, seed=0)


def test_plan_mixup_rejects_duplicate_refs() -> None:
    # given
    images = [
        BaseImage(class_name="Cat", ref="1", pixels=_solid((1, 1, 1))),
        BaseImage(class_name="Cat", ref="1", pixels=_solid((3, 3, 3))),
        BaseImage(class_name="Dog", ref="1", pixels=_solid((2, 2, 2))),
    ]

    # when / then
    with pytest.raises(ValueError, match="class 'Cat' has duplicate refs"):
        plan_mixup(images, lambdas=[0.5], n_pairs=1, seed=0)
