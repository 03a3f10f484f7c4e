"""Zip uploads are inflated within a memory budget: member sizes from the central directory are
checked before anything is inflated, and again while reading in chunks (headers can lie)."""

import io
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from elicitation import imaging, iri_manifest
from elicitation.models import ImageSet, Stimulus, Study
from jobs.models import Job
from tests.conftest import token_client
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

BOMB_INFLATED = 400 * 1024 * 1024
MEMBER_CAP = 64 * 1024 * 1024
# Far below the bomb's 400 MB: what handling the 408 KB upload itself may take.
PEAK_BUDGET = 32 * 1024 * 1024


def _bomb(name: str) -> bytes:
    """A ~408 KB zip with one member that inflates to 400 MB of zeros (written a MB at a time)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open(name, "w") as member,
    ):
        chunk = bytes(1024 * 1024)
        for _ in range(BOMB_INFLATED // len(chunk)):
            member.write(chunk)
    return out.getvalue()


@pytest.fixture(scope="module")
def image_bomb() -> bytes:
    return _bomb("shapes/circle.png")


@pytest.fixture(scope="module")
def iri_bomb() -> bytes:
    return _bomb("q.png")


def _peak(call: Callable[[], Any]) -> tuple[Any, int]:
    """call()'s result and the peak of Python memory allocated while it ran."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_an_image_zip_bomb_is_refused_without_inflating_it(
    researcher: Any, image_bomb: bytes
) -> None:
    # given
    assert len(image_bomb) < 420 * 1024
    upload = SimpleUploadedFile("images.zip", image_bomb, content_type="application/zip")
    client = token_client(researcher)
    # when
    res, peak = _peak(
        lambda: client.post(
            reverse("api:image-set-list"),
            {"name": "bomb", "source": "zip", "zip_file": upload},
            format="multipart",
        )
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == (
        "zip_file: Nothing was imported: "
        f"shapes/circle.png: inflates to {BOMB_INFLATED} bytes, more than the limit "
        f"of {MEMBER_CAP} per file (possible zip bomb)"
    )
    assert peak < PEAK_BUDGET
    assert ImageSet.objects.exists() is False
    assert Job.objects.exists() is False


def test_an_iri_zip_bomb_is_refused_without_inflating_it(researcher: Any, iri_bomb: bytes) -> None:
    # given
    study = StudyFactory(owner=researcher, trial_type=Study.TrialType.IRI_2AFC)
    manifest = SimpleUploadedFile(
        "manifest.csv",
        b"iri,target,start,model,layer,regime,regulariser,seed\nq.png,t.png,s.png,m,l,r,none,1\n",
    )
    zip_file = SimpleUploadedFile("iris.zip", iri_bomb, content_type="application/zip")
    client = token_client(researcher)
    # when
    res, peak = _peak(
        lambda: client.post(
            reverse("api:iri-import", kwargs={"slug": study.slug}),
            {"zip_file": zip_file, "manifest": manifest},
            format="multipart",
        )
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == (
        "zip_file: Nothing was imported: "
        f"q.png: inflates to {BOMB_INFLATED} bytes, more than the limit of "
        f"{MEMBER_CAP} per file (possible zip bomb)"
    )
    assert peak < PEAK_BUDGET
    assert Stimulus.objects.exists() is False


def test_the_member_cap_is_a_setting(researcher: Any, settings: Any) -> None:
    # given a small, honest zip and a cap below its one member
    settings.HMIX_MAX_ZIP_MEMBER_BYTES = 1000
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("shapes/circle.png", bytes(5000))
    upload = SimpleUploadedFile("images.zip", out.getvalue(), content_type="application/zip")
    # when
    res = token_client(researcher).post(
        reverse("api:image-set-list"),
        {"name": "small", "source": "zip", "zip_file": upload},
        format="multipart",
    )
    # then
    assert res.status_code == 400
    assert res.json()["message"] == (
        "zip_file: Nothing was imported: shapes/circle.png: inflates to 5000 bytes, more than "
        "the limit of 1000 per file (possible zip bomb)"
    )
    assert ImageSet.objects.exists() is False


def _lying_zip(real_size: int, declared: int) -> bytes:
    """A zip whose one member inflates to real_size bytes while both of its headers (local and
    central directory) declare `declared`."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("q.png", bytes(real_size))
    data = bytearray(out.getvalue())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    assert struct.unpack_from("<I", data, local + 22) == (real_size,)
    struct.pack_into("<I", data, local + 22, declared)  # local header: uncompressed size
    struct.pack_into("<I", data, central + 24, declared)  # central directory: the same
    return bytes(data)


@pytest.fixture
def counted_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every read on a zip member."""
    sizes: list[int] = []
    original = zipfile.ZipExtFile.read

    def read(self: zipfile.ZipExtFile, n: int | None = -1) -> bytes:
        sizes.append(-1 if n is None else n)
        return original(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", read)
    return sizes


def test_a_member_larger_than_its_header_says_is_refused_while_reading_in_chunks(
    counted_reads: list[int],
) -> None:
    # given a member declared as 1 KB that inflates to 8 MB
    source = io.BytesIO(_lying_zip(8 * 1024 * 1024, 1024))
    # when
    with pytest.raises(imaging.ImageImportError) as exc:
        iri_manifest.read_zip(source)
    # then the read stops at the declared size (the CRC no longer matches)
    assert str(exc.value).startswith("q.png: corrupt zip entry (Bad CRC-32 for file 'q.png')")
    assert counted_reads
    assert all(0 < n <= 64 * 1024 for n in counted_reads)


def test_honest_members_are_read_in_chunks(counted_reads: list[int]) -> None:
    # given
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/q.png", bytes(range(256)) * 4096)  # 1 MB
    # when
    files = iri_manifest.read_zip(io.BytesIO(out.getvalue()))
    # then
    assert files == {"a/q.png": bytes(range(256)) * 4096}
    assert len(counted_reads) >= 16
    assert all(0 < n <= 64 * 1024 for n in counted_reads)
