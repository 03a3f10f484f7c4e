import io
import json
import os
import random
import stat
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from elicitation.imaging import ImageImportError
from elicitation.iri_manifest import (
    ClusterGroup,
    ClusterRow,
    ClusterSet,
    ImageRef,
    IriEntry,
    ManifestError,
    RowError,
    check_manifest,
    cluster_leftover,
    cluster_sets,
    manifest_format_for,
    normalise_path,
    parse_manifest,
    read_folder,
    read_zip,
)

HEADER = "iri,target,start,model,layer,regime,regulariser,seed"
FILES = frozenset(
    {
        "iris/a.png",
        "iris/b.png",
        "iris/c.png",
        "iris/d.png",
        "iris/e.png",
        "iris/f.png",
        "iris/g.png",
        "iris/h.png",
        "targets/t1.png",
        "targets/t2.png",
        "starts/noise1.png",
    }
)


def _csv(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _entry(
    row: int,
    iri: str,
    target: str,
    *,
    start: str = "starts/noise1.png",
    model: str = "resnet50",
    layer: str = "layer4",
    regime: str = "standard",
    regulariser: str = "none",
    seed: int = 0,
) -> IriEntry:
    return IriEntry(
        row=row,
        iri=iri,
        target=target,
        start=start,
        model=model,
        layer=layer,
        regime=regime,
        regulariser=regulariser,
        seed=seed,
    )


# ---------------------------------------------------------------------------------------------
# valid manifests
# ---------------------------------------------------------------------------------------------


def test_parse_manifest_reads_a_valid_csv() -> None:
    # given: a byte-order mark, padded values and an upper-case header, as spreadsheets write
    data = "\ufeff" + (
        "IRI, Target ,start,model,layer,regime,regulariser,seed\n"
        "iris/a.png,targets/t1.png,starts/noise1.png,resnet50,layer4,standard,none,1\n"
        "\n"
        "./iris/b.png , targets/t2.png,iris/a.png,vit-b16,blocks.11,adversarial,human-aligned,-7\n"
    )
    # when
    manifest = parse_manifest(data.encode(), manifest_format="csv", files=FILES)
    # then: line numbers count the header as line 1 and include the blank line
    assert manifest.entries == (
        _entry(2, "iris/a.png", "targets/t1.png", seed=1),
        _entry(
            4,
            "iris/b.png",
            "targets/t2.png",
            start="iris/a.png",
            model="vit-b16",
            layer="blocks.11",
            regime="adversarial",
            regulariser="human-aligned",
            seed=-7,
        ),
    )
    assert manifest.warnings == ()
    assert manifest.entries[0].meta == {
        "model": "resnet50",
        "layer": "layer4",
        "regime": "standard",
        "regulariser": "none",
        "seed": 1,
        "target": "targets/t1.png",
        "start": "starts/noise1.png",
    }


@pytest.mark.parametrize("wrap", [False, True], ids=["list", "iris-object"])
def test_parse_manifest_reads_a_valid_json(wrap: bool) -> None:
    # given
    items = [
        {
            "iri": "iris/a.png",
            "target": "targets/t1.png",
            "start": "starts/noise1.png",
            "model": "resnet50",
            "layer": 4,
            "regime": "standard",
            "regulariser": "adversarial",
            "seed": 3,
        },
        {
            "iri": "iris\\b.png",
            "target": "targets/t2.png",
            "start": "starts/noise1.png",
            "model": "resnet50",
            "layer": "4",
            "regime": "standard",
            "regulariser": "none",
            "seed": "12",
        },
    ]
    document: object = {"iris": items} if wrap else items
    # when
    manifest = parse_manifest(json.dumps(document), manifest_format="json", files=FILES)
    # then: rows are list indices; an int layer and a numeric-string seed are accepted
    assert manifest.entries == (
        _entry(0, "iris/a.png", "targets/t1.png", layer="4", regulariser="adversarial", seed=3),
        _entry(1, "iris/b.png", "targets/t2.png", layer="4", seed=12),
    )
    assert manifest.warnings == ()


def test_extra_columns_and_keys_are_ignored_with_a_warning() -> None:
    # given
    csv_data = _csv(
        HEADER + ",notes,",
        "iris/a.png,targets/t1.png,starts/noise1.png,resnet50,layer4,standard,none,1,ok,",
    )
    json_data = json.dumps(
        {
            "version": 2,
            "iris": [
                {
                    "iri": "iris/a.png",
                    "target": "targets/t1.png",
                    "start": "starts/noise1.png",
                    "model": "resnet50",
                    "layer": "layer4",
                    "regime": "standard",
                    "regulariser": "none",
                    "seed": 1,
                    "loss": 0.1,
                    "notes": "",
                }
            ],
        }
    )
    # when
    from_csv = parse_manifest(csv_data, manifest_format="csv", files=FILES)
    from_json = parse_manifest(json_data, manifest_format="json", files=FILES)
    # then
    assert from_csv.entries == (_entry(2, "iris/a.png", "targets/t1.png", seed=1),)
    assert from_csv.warnings == ("ignored column(s): notes, (unnamed)",)
    assert from_json.entries == (_entry(0, "iris/a.png", "targets/t1.png", seed=1),)
    assert from_json.warnings == (
        "ignored top-level key(s): version",
        "ignored key(s): loss, notes",
    )


def test_without_a_file_set_references_are_not_checked() -> None:
    # given
    data = _csv(HEADER, "x/1.png,y/1.png,z/1.png,m,l,r,none,0")
    # when
    manifest = parse_manifest(data, manifest_format="csv")
    # then
    assert manifest.entries == (
        _entry(2, "x/1.png", "y/1.png", start="z/1.png", model="m", layer="l", regime="r"),
    )


# ---------------------------------------------------------------------------------------------
# bad manifests: every problem, with its row, in one go
# ---------------------------------------------------------------------------------------------


def test_every_bad_csv_row_is_reported_in_one_go() -> None:
    # given
    data = _csv(
        HEADER,
        "iris/a.png,targets/t1.png,starts/noise1.png,resnet50,layer4,standard,none,1",
        "iris/b.png,targets/t1.png,,resnet50,layer4,standard,none,x",
        "iris/c.png,targets/t1.png,starts/noise1.png,resnet50,layer4,standard,l2,2",
        "iris/d.png,targets/missing.png,starts/noise1.png,resnet50,layer4,standard,none,3",
        "iris/a.png,targets/t2.png,starts/noise1.png,resnet50,layer4,standard,none,4",
        "iris/e.png,targets/t1.png,targets/t1.png,resnet50,layer4,standard,none,5",
        "iris/f.png,targets/t1.png,starts/noise1.png, ,layer4,standard,adversarial,1.5",
        "iris/g.png,targets/t1.png",
        "../etc/passwd,/abs/t.png,starts/noise1.png,resnet50,layer4,standard,none,6",
        "iris/h.png,targets/t1.png,starts/noise1.png,resnet50,layer4,standard,none,7,extra",
        "targets/t2.png,targets/t2.png,starts/noise1.png,resnet50,layer4,standard,none,8",
    )
    short = "missing value (the row has 2 of 8 values)"
    # when
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, manifest_format="csv", files=FILES)
    # then
    assert caught.value.errors == [
        RowError(3, "start", "empty value"),
        RowError(3, "seed", "seed must be an integer, got 'x'"),
        RowError(
            4,
            "regulariser",
            "unknown regulariser 'l2' (expected one of: none, human-aligned, adversarial)",
        ),
        RowError(5, "target", "image 'targets/missing.png' is not in the folder/zip"),
        RowError(6, "iri", "duplicate IRI 'iris/a.png' (also on row 2)"),
        RowError(7, "start", "the start image is the same file as the target"),
        RowError(8, "model", "empty value"),
        RowError(8, "seed", "seed must be an integer, got '1.5'"),
        RowError(9, "start", short),
        RowError(9, "model", short),
        RowError(9, "layer", short),
        RowError(9, "regime", short),
        RowError(9, "regulariser", short),
        RowError(9, "seed", short),
        RowError(10, "iri", "unsafe path '../etc/passwd' (absolute or containing '..')"),
        RowError(10, "target", "unsafe path '/abs/t.png' (absolute or containing '..')"),
        RowError(11, None, "9 values, but the header has 8 columns"),
        RowError(12, "iri", "the IRI is the same file as its target"),
    ]
    message = str(caught.value)
    assert message.startswith("18 problem(s) in the IRI manifest:\n")
    assert "  row 6, column 'iri': duplicate IRI 'iris/a.png' (also on row 2)\n" in message
    assert message.endswith("  row 12, column 'iri': the IRI is the same file as its target")


def test_check_manifest_keeps_the_valid_rows_and_every_reference() -> None:
    # given
    data = _csv(
        HEADER,
        "iris/a.png,targets/t1.png,starts/noise1.png,resnet50,layer4,standard,none,1",
        "iris/b.png,targets/nope.png,starts/noise1.png,resnet50,layer4,standard,none,x",
    )
    # when
    checked = check_manifest(data, manifest_format="csv", files=FILES)
    # then: row 3's present images are still listed so the service can decode-check them
    assert checked.entries == (_entry(2, "iris/a.png", "targets/t1.png", seed=1),)
    assert checked.errors == (
        RowError(3, "target", "image 'targets/nope.png' is not in the folder/zip"),
        RowError(3, "seed", "seed must be an integer, got 'x'"),
    )
    assert checked.references == (
        ImageRef(2, "iri", "iris/a.png"),
        ImageRef(2, "target", "targets/t1.png"),
        ImageRef(2, "start", "starts/noise1.png"),
        ImageRef(3, "iri", "iris/b.png"),
        ImageRef(3, "start", "starts/noise1.png"),
    )


def test_missing_csv_columns_are_reported_once_with_every_row_problem() -> None:
    # given: no "regime" and no "seed" column, a duplicated "model" column, and a bad row
    data = _csv(
        "iri,target,start,model,layer,regulariser,model",
        "iris/a.png,targets/t1.png,starts/noise1.png,resnet50,layer4,none,x",
        "iris/b.png,targets/t1.png,starts/noise1.png,resnet50,,sparse,y",
    )
    # when
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, manifest_format="csv", files=FILES)
    # then
    assert caught.value.errors == [
        RowError(1, "model", "column appears more than once"),
        RowError(1, "regime", "missing column"),
        RowError(1, "seed", "missing column"),
        RowError(3, "layer", "empty value"),
        RowError(
            3,
            "regulariser",
            "unknown regulariser 'sparse' (expected one of: none, human-aligned, adversarial)",
        ),
    ]


def test_every_bad_json_entry_is_reported_in_one_go() -> None:
    # given
    good = {
        "iri": "iris/a.png",
        "target": "targets/t1.png",
        "start": "starts/noise1.png",
        "model": "resnet50",
        "layer": "layer4",
        "regime": "standard",
        "regulariser": "none",
        "seed": 1,
    }
    items = [
        good,
        "iris/b.png",
        {k: v for k, v in good.items() if k not in ("model", "seed")} | {"iri": "iris/b.png"},
        good | {"iri": "iris/c.png", "seed": True, "layer": None, "target": 5},
        good | {"iri": "iris/d.png", "seed": 2.0, "regulariser": "None", "regime": ""},
        good | {"iri": "iris/e.png", "start": "iris/e.png"},
    ]
    # when
    with pytest.raises(ManifestError) as caught:
        parse_manifest(json.dumps(items), manifest_format="json", files=FILES)
    # then
    assert caught.value.errors == [
        RowError(1, None, "expected an object, got str"),
        RowError(2, "model", "missing key"),
        RowError(2, "seed", "missing key"),
        RowError(3, "target", "must be a string, got int"),
        RowError(3, "layer", "must be a string, got NoneType"),
        RowError(3, "seed", "seed must be an integer, got True"),
        RowError(4, "regime", "empty value"),
        RowError(
            4,
            "regulariser",
            "unknown regulariser 'None' (expected one of: none, human-aligned, adversarial)",
        ),
        RowError(4, "seed", "seed must be an integer, got 2.0"),
        RowError(5, "iri", "the IRI is the same file as its start"),
    ]


@pytest.mark.parametrize(
    ("data", "manifest_format", "message"),
    [
        (b"", "csv", "manifest: the CSV file is empty (a header is required)"),
        (HEADER.encode() + b"\n", "csv", "manifest: the manifest lists no IRIs"),
        (b"\xff\xfe,", "csv", "manifest: not UTF-8 text"),
        (b'[{"iri": ', "json", "manifest: not valid JSON"),
        (b'{"rows": []}', "json", 'manifest: expected a list of objects or {"iris": [...]}'),
        (b"42", "json", 'manifest: expected a list of objects or {"iris": [...]}'),
        (b"[]", "json", "manifest: the manifest lists no IRIs"),
    ],
)
def test_unreadable_manifests_are_refused(data: bytes, manifest_format: str, message: str) -> None:
    # when
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, manifest_format=manifest_format, files=FILES)
    # then
    [error] = caught.value.errors
    assert str(error).startswith(message)


def test_a_path_missing_its_zip_root_folder_gets_a_hint() -> None:
    # given: "compress folder" put everything under set1/
    files = {"set1/iris/a.png", "set1/targets/t1.png", "set1/starts/noise1.png"}
    data = _csv(HEADER, "iris/a.png,targets/t1.png,starts/noise1.png,m,l,r,none,1")
    # when
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, manifest_format="csv", files=files)
    # then
    assert [e.message for e in caught.value.errors] == [
        "image 'iris/a.png' is not in the folder/zip (did you mean 'set1/iris/a.png'?)",
        "image 'targets/t1.png' is not in the folder/zip (did you mean 'set1/targets/t1.png'?)",
        "image 'starts/noise1.png' is not in the folder/zip (did you mean "
        "'set1/starts/noise1.png'?)",
    ]


def test_csv_rows_are_numbered_by_the_line_they_start_on() -> None:
    # given: a quoted value spanning two lines
    data = _csv(
        HEADER,
        'iris/a.png,targets/t1.png,starts/noise1.png,"res\nnet",layer4,standard,none,1',
        "iris/b.png,targets/t1.png,starts/noise1.png,resnet50,layer4,standard,none,z",
    )
    # when
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, manifest_format="csv", files=FILES)
    # then
    assert caught.value.errors == [RowError(4, "seed", "seed must be an integer, got 'z'")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("iris/a.png", "iris/a.png"),
        (" ./iris//a.png ", "iris/a.png"),
        ("iris\\a.png", "iris/a.png"),
        ("Cafe\u0301.png", "Caf\u00e9.png"),
        ("../a.png", None),
        ("/a.png", None),
        ("C:/a.png", None),
        ("./", None),
    ],
)
def test_normalise_path(raw: str, expected: str | None) -> None:
    assert normalise_path(raw) == expected


@pytest.mark.parametrize(
    ("name", "expected"), [("m.csv", "csv"), ("dir/M.JSON", "json"), (Path("a.b.csv"), "csv")]
)
def test_manifest_format_for(name: str | Path, expected: str) -> None:
    assert manifest_format_for(name) == expected


def test_manifest_format_for_refuses_other_extensions() -> None:
    with pytest.raises(ValueError, match=r"m\.txt: a manifest must be a \.csv or \.json file"):
        manifest_format_for("m.txt")


# ---------------------------------------------------------------------------------------------
# clustering sets (interface F)
# ---------------------------------------------------------------------------------------------


def _cluster_entries() -> list[IriEntry]:
    entries = []
    row = 2
    # Group 1: t1..t3 with 2 IRIs, t4 with 3 (one left over), t5 with 1 (skipped).
    for target, n in (("t1", 2), ("t2", 2), ("t3", 2), ("t4", 3), ("t5", 1)):
        for k in range(n):
            entries.append(_entry(row, f"g1/{target}_{k}.png", f"targets/{target}.png", seed=k))
            row += 1
    # Group 2 (another regulariser): only two targets, so no set.
    for target in ("t1", "t2"):
        for k in range(2):
            entries.append(
                _entry(
                    row,
                    f"g2/{target}_{k}.png",
                    f"targets/{target}.png",
                    regulariser="adversarial",
                    seed=k,
                )
            )
            row += 1
    return entries


def test_cluster_sets_form_sets_of_three_targets_with_two_iris_each_within_a_group() -> None:
    # given
    entries = _cluster_entries()
    # when
    sets = cluster_sets(entries, seed=0)
    # then: 4 usable targets in group 1 → one set of 3; the rest is left over
    group = ClusterGroup("resnet50", "layer4", "standard", "none")
    [cluster] = sets
    assert cluster.group == group
    assert len(set(cluster.targets)) == 3
    assert set(cluster.targets) <= {
        "targets/t1.png",
        "targets/t2.png",
        "targets/t3.png",
        "targets/t4.png",
    }
    assert [row.column for row in cluster.rows] == [0, 0, 1, 1, 2, 2]
    for row in cluster.rows:
        assert row.entry.target == cluster.targets[row.column]
        assert row.entry.group == group
    assert len(set(cluster.iris)) == 6
    leftover = cluster_leftover(entries, sets)
    assert len(leftover) == len(entries) - 6 == 8
    assert [e.iri for e in leftover] == [e.iri for e in entries if e.iri not in cluster.iris]


def test_cluster_sets_exact_for_a_minimal_group() -> None:
    # given: three targets with exactly two IRIs each
    entries = [
        _entry(i, f"iris/{t}{k}.png", f"targets/{t}.png", seed=k)
        for i, (t, k) in enumerate((t, k) for t in "abc" for k in range(2))
    ]
    by_iri = {e.iri: e for e in entries}
    # when
    [cluster] = cluster_sets(entries, seed=5)
    # then: the only freedom is the column order and the order within each pair
    assert sorted(cluster.targets) == ["targets/a.png", "targets/b.png", "targets/c.png"]
    assert cluster == ClusterSet(
        group=ClusterGroup("resnet50", "layer4", "standard", "none"),
        targets=cluster.targets,
        rows=tuple(
            ClusterRow(column, by_iri[iri])
            for column, target in enumerate(cluster.targets)
            for iri in sorted(
                (e.iri for e in entries if e.target == target),
                key=[r.entry.iri for r in cluster.rows].index,
            )
        ),
    )
    assert cluster_leftover(entries, [cluster]) == []


def test_cluster_sets_use_every_pair_the_targets_allow() -> None:
    # given: pairs per target a:2, b:2, c:1, d:1 → 6 pairs → at most 2 sets
    counts = {"a": 4, "b": 4, "c": 2, "d": 2}
    entries = [
        _entry(0, f"iris/{t}{k}.png", f"targets/{t}.png", seed=k)
        for t, n in counts.items()
        for k in range(n)
    ]
    # when
    sets = cluster_sets(entries, seed=1)
    # then
    assert len(sets) == 2
    assert cluster_leftover(entries, sets) == []
    assert all(len(set(s.targets)) == 3 for s in sets)
    assert Counter(t for s in sets for t in s.targets) == {
        "targets/a.png": 2,
        "targets/b.png": 2,
        "targets/c.png": 1,
        "targets/d.png": 1,
    }


def test_cluster_sets_are_deterministic_in_the_seed_and_not_in_the_row_order() -> None:
    # given
    entries = [
        _entry(0, f"iris/{t}{k}.png", f"targets/{t}.png", seed=k)
        for t in "abcdefghij"
        for k in range(4)
    ]
    shuffled = entries[:]
    random.Random(3).shuffle(shuffled)
    # when
    first = cluster_sets(entries, seed=7)
    again = cluster_sets(shuffled, seed=7)
    other = cluster_sets(entries, seed=8)
    # then
    assert first == again
    assert first != other
    assert len(first) == len(other) == 6  # 20 pairs → 6 sets, 2 pairs (4 IRIs) left over
    assert len(cluster_leftover(entries, first)) == 4


def test_cluster_sets_of_one_group_do_not_depend_on_other_groups() -> None:
    # given
    entries = _cluster_entries()
    extra = [
        _entry(0, f"other/{t}{k}.png", f"targets/{t}.png", model="vit", seed=k)
        for t in "xyz"
        for k in range(2)
    ]
    # when
    alone = cluster_sets(entries, seed=0)
    together = cluster_sets(entries + extra, seed=0)
    # then
    assert [s for s in together if s.group.model == "resnet50"] == alone
    assert len(together) == 2


# ---------------------------------------------------------------------------------------------
# folder and zip readers
# ---------------------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_read_folder_reads_every_file_by_relative_path(tmp_path: Path) -> None:
    # given
    for name, data in {
        "iris/a.png": b"A",
        "targets/deep/t.png": b"T",
        "notes.txt": b"N",
        ".DS_Store": b"x",
        ".git/config": b"x",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    # when
    files = read_folder(tmp_path)
    # then
    assert files == {"iris/a.png": b"A", "targets/deep/t.png": b"T", "notes.txt": b"N"}


def test_read_folder_refuses_a_link_outside_the_folder(tmp_path: Path) -> None:
    # given
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"s")
    root = tmp_path / "set"
    root.mkdir()
    os.symlink(outside, root / "a.png")
    # when / then
    with pytest.raises(ImageImportError, match=r"a\.png: links outside the folder"):
        read_folder(root)


def test_read_folder_caps_files_and_bytes(tmp_path: Path) -> None:
    # given
    for k in range(3):
        (tmp_path / f"{k}.png").write_bytes(b"12345")
    # when / then
    with pytest.raises(ImageImportError, match="more than the limit of 2 files"):
        read_folder(tmp_path, max_files=2)
    with pytest.raises(ImageImportError, match="more than the limit of 12 bytes"):
        read_folder(tmp_path, max_total_bytes=12)


def test_read_zip_reads_every_file_by_path(tmp_path: Path) -> None:
    # given
    data = _zip_bytes(
        {"iris/a.png": b"A", "set\\t.png": b"T", "__MACOSX/iris/._a.png": b"x", "iris/": b""}
    )
    path = tmp_path / "set.zip"
    path.write_bytes(data)
    # when
    from_path = read_zip(path)
    from_object = read_zip(io.BytesIO(data))
    # then
    assert from_path == from_object == {"iris/a.png": b"A", "set/t.png": b"T"}


@pytest.mark.parametrize("member", ["../evil.png", "/abs.png", "a/../../b.png", "C:/x.png"])
def test_read_zip_refuses_zip_slip(member: str) -> None:
    # given
    data = _zip_bytes({"iris/a.png": b"A", member: b"x"})
    # when / then
    with pytest.raises(ImageImportError, match="unsafe path in zip"):
        read_zip(io.BytesIO(data))


def test_read_zip_refuses_symlinks_and_caps_members_and_size() -> None:
    # given
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("iris/a.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    many = _zip_bytes({f"{k}.png": b"x" for k in range(3)})
    bomb = _zip_bytes({"a.png": bytes(2_000_000)})
    # when / then
    with pytest.raises(ImageImportError, match="symbolic links are not allowed"):
        read_zip(io.BytesIO(buffer.getvalue()))
    with pytest.raises(ImageImportError, match="3 entries, more than the limit of 2"):
        read_zip(io.BytesIO(many), max_files=2)
    with pytest.raises(ImageImportError, match="possible zip bomb"):
        read_zip(io.BytesIO(bomb), max_total_bytes=1_000_000)


def test_read_zip_refuses_a_non_zip() -> None:
    with pytest.raises(ImageImportError, match="not a readable zip file"):
        read_zip(io.BytesIO(b"not a zip"))
