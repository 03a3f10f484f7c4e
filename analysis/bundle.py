"""The dataset bundle: one zip with every export of a study and a datasheet README.md.

Every member is streamed into the zip (`ZipFile.open(name, "w")`) from the same generators as
`manage.py export` and the REST export, so memory does not grow with the study and each file is
byte-identical to the single export of the same name. Participants are named by their
pseudonym, never by their session token; their platform ids are in it only when asked for
(`raw_ids`), and the datasheet says which.
"""

import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from analysis import export_sql, exports, selectors
from analysis.aggregation import Method
from analysis.models import AnalysisResult
from elicitation import selectors as elicitation_selectors
from elicitation.models import Participant, Response, Study, Trial

# Bytes gathered before each write to a file or zip member: a handful of rows per write instead
# of one, while holding no more than this at once.
WRITE_BUFFER = 64 * 1024

# One line per construction for the datasheet; the definitions, with worked examples, are in
# docs/methods/soft-labels.md and the implementation in analysis/aggregation.py.
CONSTRUCTION_SUMMARIES = {
    "cifar10s-top2-clamp": "the published CIFAR-10S construction, quirks included: the stated "
    "percents, with the mass left over (or γ, when they reach 100 %) spread over the classes "
    "at zero that were not ticked impossible",
    "hmix-2023": "the published H-Mix 2023 variant of that construction (it differs only when "
    "the stated percents reach 100 %)",
    "clean-top2-clamp": "the CIFAR-10S construction with its quirks fixed: the stated percents, "
    "the mass left over (or γ, when they reach 100 %) spread evenly over the classes at zero "
    "not ticked impossible; a class ticked impossible gets nothing",
    "top1": "clean-top2-clamp without the second class and with γ = 0",
    "uniform": "the stated percents, the mass left over spread evenly over every class at zero "
    "(impossible ticks ignored)",
    "renormalise": "the stated percents divided by their sum (impossible ticks ignored)",
    "simselect2": "0.5 on the top and 0.5 on the second class, or 1.0 on the top class alone",
}

# The docs section that defines each method, named in the datasheet so that a reader of the
# bundle can find the exact definition at the version under Provenance (tests/test_docs_links.py
# checks that every one of these exists).
CONSTRUCTION_DOCS = {
    "cifar10s-top2-clamp": "docs/methods/soft-labels.md#cifar10s-top2-clamp",
    "hmix-2023": "docs/methods/soft-labels.md#hmix-2023",
    "clean-top2-clamp": "docs/methods/soft-labels.md#clean-top2-clamp",
    "top1": "docs/methods/soft-labels.md#top1",
    "uniform": "docs/methods/soft-labels.md#uniform",
    "renormalise": "docs/methods/soft-labels.md#renormalise",
    "simselect2": "docs/methods/soft-labels.md#simselect2",
}
SMOOTHING_DOCS = "docs/methods/soft-labels.md#label-smoothing"
AGGREGATION_DOCS = "docs/methods/soft-labels.md#aggregation"
ANALYSIS_DOCS = {
    "mixing-factor": "docs/methods/interface-analyses.md#mixing-factor",
    "midpoints": "docs/methods/interface-analyses.md#midpoints",
    "iri-alignment": "docs/methods/iri-alignment.md",
}
METHODS_DOCS = "docs/methods/index.md"

# Rows written between two progress reports of write_chunks.
REPORT_EVERY = 1000


class Progress(Protocol):
    """Told how many rows a bundle will have, then as they are written."""

    def start(self, total: int) -> None: ...

    def advance(self, rows: int, member: str) -> None: ...


@dataclass(frozen=True)
class Member:
    """One file of the bundle: `what` exported as `fmt` (exports.export_stream)."""

    name: str
    what: str
    fmt: str
    description: str


ANALYSIS_WHAT = exports.ANALYSIS_WHAT


def bundle_members(*, study: Study) -> list[Member]:
    """The files of the study's bundle, in the order they are written (README.md comes first)."""
    members = [
        Member("responses.csv", "responses", "csv", "Every stored response, one row each."),
        Member("responses.jsonl", "responses", "jsonl", "The same responses as JSON Lines."),
    ]
    if study.trial_type == Study.TrialType.CATEGORICAL:
        members += [
            Member(
                "soft-labels.csv",
                "soft-labels",
                "csv",
                "One aggregated soft label per stimulus (stored labels of the bundle's method).",
            ),
            Member(
                "soft-labels.json",
                "soft-labels",
                "json",
                "The same soft labels as one JSON object keyed by stimulus.",
            ),
            Member(
                "soft-labels.index.csv",
                "soft-labels",
                "npy-index",
                "Which stimulus each row of soft-labels.npy is.",
            ),
            Member(
                "soft-labels.npy",
                "soft-labels",
                "npy",
                "The soft labels as an N x K float64 array, row i = row i of "
                "soft-labels.index.csv (laid out like CIFAR-10H's cifar10h-probs.npy).",
            ),
            Member(
                "annotation-soft-labels.json",
                "annotation-soft-labels",
                "json",
                "Each annotation's own probability vector, grouped by stimulus.",
            ),
        ]
    else:
        what = ANALYSIS_WHAT[Study.TrialType(study.trial_type)]
        members += [
            Member(
                f"{what}.csv",
                what,
                "csv",
                "The stored analysis results, one row per group (see the column dictionary).",
            ),
            Member(f"{what}.json", what, "json", "The same analysis results as JSON."),
        ]
    return members


# --- counts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleCounts:
    participants_by_stage: dict[str, int]
    responses_by_kind: dict[str, int]
    stimuli: int
    batches: int
    soft_labels: int
    annotations: int
    analysis_results_by_kind: dict[str, int]

    @property
    def responses(self) -> int:
        return sum(self.responses_by_kind.values())

    @property
    def analysis_results(self) -> int:
        return sum(self.analysis_results_by_kind.values())


def _count_by(rows: Iterable[dict[str, Any]], key: str) -> dict[str, int]:
    return {r[key]: r["n"] for r in sorted(rows, key=lambda r: r[key])}


def bundle_counts(*, study: Study, method: Method) -> BundleCounts:
    annotations = 0
    soft_labels = 0
    if study.trial_type == Study.TrialType.CATEGORICAL:
        qs = selectors.categorical_responses(study=study)
        if not method.include_repeats:
            qs = qs.exclude(kind=Trial.Kind.REPEAT)
        annotations = qs.count()
        soft_labels = selectors.soft_label_list(study=study, method=method).count()
    return BundleCounts(
        participants_by_stage=_count_by(
            Participant.objects.filter(study=study).values("stage").annotate(n=Count("id")),
            "stage",
        ),
        responses_by_kind=_count_by(
            selectors.without_withdrawn(Response.objects.filter(study=study))
            .values("kind")
            .annotate(n=Count("id")),
            "kind",
        ),
        stimuli=study.stimuli.count(),
        batches=study.batches.count(),
        soft_labels=soft_labels,
        annotations=annotations,
        analysis_results_by_kind=_count_by(
            AnalysisResult.objects.filter(study=study).values("kind").annotate(n=Count("id")),
            "kind",
        ),
    )


def member_rows(member: Member, counts: BundleCounts) -> int:
    """The rows `member` will hold, from the counts (for progress; a live study may add some)."""
    if member.what == "responses":
        return counts.responses
    if member.what == "soft-labels":
        return counts.soft_labels
    if member.what == "annotation-soft-labels":
        return counts.annotations
    kinds = exports.ANALYSIS_KINDS[member.what]
    return sum(counts.analysis_results_by_kind.get(k, 0) for k in kinds)


def bundle_rows(members: list[Member], counts: BundleCounts) -> int:
    """Rows bundle_write reports as progress in all (the .npy shares its index's pass)."""
    return sum(member_rows(m, counts) for m in members if m.fmt != "npy")


# --- the column dictionary ----------------------------------------------------------------------

RESPONSE_COLUMNS = {
    "id": "Response id (database key; grows in the order responses were stored).",
    "participant": "The participant's pseudonym: a keyed hash (HMAC-SHA256, 16 hex digits) of "
    "their platform id within this study; stable across exports, not reversible without the "
    "site's key, different for the same worker in another study.",
    "platform": "Where the participant came from: prolific, mturk or direct.",
    "external_id": "The platform's participant id (PROLIFIC_PID / MTurk workerId), only in a "
    "bundle built with raw platform ids (empty otherwise); personal data: remove it before "
    "publishing.",
    "batch": "Number of the batch of stimuli the participant was given.",
    "stimulus": "Key of the stimulus the response is about.",
    "kind": "Trial kind: main, repeat (a stimulus shown again), practice, catch or gold.",
    "position": "0-based position of the trial in the participant's sequence.",
    "rt_ms": "Response time in milliseconds, from all stimulus images loaded to submission.",
    "top_class": "Categorical: the class given the highest probability (empty otherwise).",
    "p1": "Categorical: percent given to top_class, 0-100 as typed (imported published rows "
    "may exceed 100).",
    "second_class": "Categorical: the second most probable class, if one was given.",
    "p2": "Categorical: percent given to second_class.",
    "impossible": "Categorical: JSON list of the classes ticked as impossible.",
    "class_order": "Categorical: JSON list, the class order shown to this participant.",
    "value": "Interfaces B-F: JSON object, the parsed answer (B: lam_hat, confidence; C: "
    "start_step, final_step, lam, visits; D: chosen_position, chosen_step, lam, order; E: side, "
    "chosen, correct, catch, catch_passed; F: rows with their assignments and correctness).",
    "raw": "JSON: the answer exactly as the browser submitted it (or the published raw value).",
    "client_key": "The browser's idempotency key of the submission (UUID).",
    "created_at": "When the response was stored (ISO 8601, UTC).",
}

SOFT_LABEL_COLUMNS = {
    "stimulus": "Stimulus key.",
    "n_annotations": "Annotations averaged into the label (repeats count as extra ones unless "
    "the method leaves them out).",
    "n_annotators": "Distinct participants among those annotations.",
    "entropy": "Shannon entropy of the soft label, in nats.",
}

INDEX_COLUMNS = {
    "row": "Row of soft-labels.npy (0-based).",
    "stimulus": "Stimulus key of that row.",
    "n_annotations": "Annotations averaged into the row's label.",
    "n_annotators": "Distinct participants among those annotations.",
}

# The analysis CSVs hold the union of the fields of every stored row (docs/formats/export.md); a
# field
# belongs to the kinds named in brackets and is empty in the other rows.
ANALYSIS_COLUMNS = {
    "kind": "Which result the row is: mixing-stimulus, mixing-lambda, midpoint, "
    "midpoint-consistency or iri-alignment.",
    "key": "The group the row summarises (a stimulus key, a λ level, "
    "interface|start step|pair, an interface, or model|layer|regime|regulariser).",
    "params": "JSON: the parameters the row was computed with (include_repeats; "
    "exclude_flagged and catch_threshold for IRI).",
    "n": "Responses (or judgments) the row is computed from.",
    # mixing factor (interface B)
    "stimulus": "[mixing-stimulus] Stimulus key.",
    "lam_true": "[mixing-*] True mixing factor λ (weight of image 1).",
    "n_annotators": "[mixing-stimulus, iri-alignment] Distinct participants.",
    "mean_lam_hat": "[mixing-*] Mean perceived λ̂ = 1 - slider/100.",
    "sd_lam_hat": "[mixing-*] SD of λ̂: population (ddof 0) per stimulus, sample (ddof 1) per "
    "λ level.",
    "mean_confidence": "[mixing-*] Mean confidence c = confidence/100.",
    "relabel_difference": "[mixing-stimulus] λ - mean λ̂.",
    "confidence_weighted_mean": "[mixing-stimulus] Σ λ̂·c / Σ c (empty when every c is 0).",
    "hmix_weighted_relabel": "[mixing-stimulus] Mean of λ̂·c, as the published H-Mix "
    "summaries report it.",
    "hmix_weighted_difference": "[mixing-stimulus] λ - hmix_weighted_relabel.",
    "human_relabel": "[mixing-stimulus] JSON [mean λ̂, 1 - mean λ̂]: a 2-class training label.",
    "median_lam_hat": "[mixing-lambda] Median λ̂.",
    "mean_abs_error": "[mixing-lambda] Mean |λ̂ - λ|.",
    "sd_confidence": "[mixing-lambda] Sample SD (ddof 1) of c.",
    "share_extreme": "[mixing-lambda] Share of answers with λ̂ exactly 0 or 1.",
    "error_confidence_correlation": "[mixing-lambda] Pearson correlation of |λ̂ - λ| and c.",
    # midpoints (interfaces C and D)
    "interface": "[midpoint*] construct (C) or select (D).",
    "start_step": "[midpoint] Start step of the slider (C: 1 or 9; empty = pooled).",
    "pair": "[midpoint] Class pair (series key), or __all__ for every pair pooled.",
    "mean": "[midpoint] Mean chosen λ (step / 10).",
    "sd": "[midpoint] Sample SD (ddof 1) of the chosen λ.",
    "median": "[midpoint] Median chosen λ.",
    "share_half": "[midpoint] Share of answers at exactly λ = 0.5.",
    "share_near_half": "[midpoint] Share of answers with λ in [0.4, 0.6].",
    "histogram": "[midpoint] JSON list: answers per step 0..10 (λ = 0.0 .. 1.0).",
    "n_pairs": "[midpoint-consistency] (participant, pair) answered both as main and repeat.",
    "mean_abs_diff": "[midpoint-consistency] Mean |Δλ| between main and repeat answer.",
    "share_identical": "[midpoint-consistency] Share of identical main and repeat answers.",
    # IRI alignment (interfaces E and F)
    "n_judgments": "[iri-alignment] Judgments scored.",
    "n_items": "[iri-alignment] Distinct IRIs judged.",
    "n_correct": "[iri-alignment] Judgments that picked the target.",
    "mean_score": "[iri-alignment] Mean of the per-participant scores, percent.",
    "sd_score": "[iri-alignment] Population SD (ddof 0) of those scores.",
    "pooled_percent": "[iri-alignment] 100 · all correct / all judgments.",
    "wilson_low": "[iri-alignment] Wilson interval on the pooled judgments, low end, percent.",
    "wilson_high": "[iri-alignment] Wilson interval, high end, percent.",
    "boot_low": "[iri-alignment] Two-way cluster bootstrap interval of mean_score, low end.",
    "boot_high": "[iri-alignment] Bootstrap interval, high end.",
    "n_boot": "[iri-alignment] Bootstrap replicates requested.",
    "n_boot_used": "[iri-alignment] Replicates with at least one judgment.",
    "seed": "[iri-alignment] Bootstrap seed.",
    "confidence": "[iri-alignment] Interval confidence level.",
    "chance": "[iri-alignment] Chance score (33.3 for clustering; empty for 2AFC).",
    "chance_corrected": "[iri-alignment] (mean_score - chance) / (100 - chance).",
    "group": "[iri-alignment] JSON {model, layer, regime, regulariser}.",
    "annotator_scores": "[iri-alignment] JSON {participant id: score}.",
    "rank": "[iri-alignment] Rank of the group by mean_score (1 = most aligned).",
    "flagged_participants": "[iri-alignment] JSON list of participants below the catch threshold.",
}


def _csv_header(study: Study, member: Member, method: Method) -> list[str]:
    # The first chunk of every CSV export is its header line, yielded before any row is read.
    stream = exports.export_stream(study=study, what=member.what, fmt=member.fmt, method=method)
    first = next(iter(stream))
    assert isinstance(first, str)
    return next(csv.reader(io.StringIO(first)))


def column_meaning(member: Member, column: str, classes: list[str]) -> str:
    if member.what == "responses":
        table = RESPONSE_COLUMNS
    elif member.fmt == "npy-index":
        table = INDEX_COLUMNS
    elif member.what == "soft-labels":
        table = SOFT_LABEL_COLUMNS
    else:
        table = ANALYSIS_COLUMNS
    if column in table:
        return table[column]
    # A class column's header is the class name, neutralised like any CSV text cell.
    if member.what == "soft-labels" and column in {exports.csv_safe(c) for c in classes}:
        return f"Probability of class {column} (the {len(classes)} class columns sum to 1)."
    return "(not described: a field added after this dictionary was written)"


# --- the datasheet ------------------------------------------------------------------------------


# Set by the Dockerfile from its build argument of the same name (an image holds no .git).
VERSION_ENV = "HMIX_VERSION"


@dataclass(frozen=True)
class SourceVersion:
    """The H-Mix version the datasheet cites (docs/deployment.md#version)."""

    version: str  # a git tag or commit (as `git describe` prints it), or the package version
    source: str  # where `version` came from
    package: str  # the version in pyproject.toml


def _package_version() -> str:
    try:
        return metadata.version("hmix")
    except metadata.PackageNotFoundError:
        return "unknown"


def source_version() -> SourceVersion:
    """HMIX_VERSION if set; else `git describe` of the checkout; else its .git HEAD read directly
    (a checkout on a machine without git); else the package version."""
    package = _package_version()
    pinned = os.environ.get(VERSION_ENV, "").strip()
    if pinned:
        return SourceVersion(pinned, f"{VERSION_ENV}, set when the image was built", package)
    base = Path(settings.BASE_DIR)
    described = _git_describe(base)
    if described:
        return SourceVersion(described, "git describe --tags --always --dirty", package)
    head = _git_head(base / ".git")
    if head:
        return SourceVersion(head, "the checkout's .git/HEAD", package)
    return SourceVersion(package, "the package version (no git tag or commit known)", package)


def _git_describe(base: Path) -> str | None:
    git = shutil.which("git")
    if git is None or not (base / ".git").exists():
        return None
    try:
        # A fixed argument list run in our own checkout: no untrusted input reaches the command.
        done = subprocess.run(  # noqa: S603
            [git, "describe", "--tags", "--always", "--dirty"],
            cwd=base,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    described = done.stdout.strip()
    return described if done.returncode == 0 and described else None


def _git_head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head.removeprefix("ref: ")
        if (git / ref).is_file():
            return (git / ref).read_text().strip() or None
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


def _md_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


DATASHEET_SECTIONS = [
    "Study",
    "Classes",
    "Settings",
    "Counts",
    "Files",
    "Column dictionary",
    "Methods and parameters",
    "Provenance",
]


def datasheet(
    *,
    study: Study,
    method: Method,
    counts: BundleCounts,
    members: list[Member],
    headers: dict[str, list[str]],
    built_at: datetime,
    raw_ids: bool = False,
) -> str:
    """README.md of the bundle (sections: DATASHEET_SECTIONS)."""
    out = [f"# {study.title}: dataset bundle", ""]
    out += [
        f"Exported from H-Mix on {built_at:%Y-%m-%d %H:%M} UTC. Counts are those of that moment; "
        "a study still live may have gained responses while the files were written.",
        "",
        (
            "Participants are named by a pseudonym (a keyed hash). This bundle ALSO holds their "
            "platform ids (`external_id`, and `subject` in imported raw rows): personal data, "
            "remove them before publishing."
            if raw_ids
            else "Participants are named by a pseudonym (a keyed hash); their platform ids are "
            "not in this bundle. Withdrawn participants' answers are left out."
        ),
        "",
        "## Study",
        "",
        _md_table(
            ["field", "value"],
            [
                ("title", study.title),
                ("slug", study.slug),
                ("trial type", f"{study.trial_type} ({study.get_trial_type_display()})"),
                ("status", study.status),
                ("created", f"{study.created_at:%Y-%m-%d}"),
            ],
        ),
        "",
        "## Classes",
        "",
        "Every probability vector of the study lists the classes in this order "
        "(column i of the soft-label files, entry i of each `probs`).",
        "",
        _md_table(["index", "class"], enumerate(study.classes)),
        "",
    ]
    interface = elicitation_selectors.study_settings(study=study)
    settings_rows: list[tuple[str, Any]] = [
        ("participants per batch", study.participants_per_batch),
        ("repeat trials per participant", study.repeats),
        ("expected session length (minutes)", study.expected_minutes),
        ("lease (minutes)", study.lease_minutes),
        ("answers flagged as too fast under (ms)", study.min_response_ms),
        ("comprehension questions", len(study.comprehension)),
        (
            "comprehension failures before exclusion",
            "no limit"
            if study.max_comprehension_failures is None
            else study.max_comprehension_failures,
        ),
    ]
    if study.trial_type == study.TrialType.CONSTRUCT_MIDPOINT:
        settings_rows.append(("answer at the start step allowed", study.allow_no_steps))
    settings_rows += [
        (name.replace("_", " "), json.dumps(value) if isinstance(value, dict | list) else value)
        for name, value in interface.items()
    ]
    settings_rows += [
        ("label method (study default)", study.label_method),
        ("label parameters (study default)", json.dumps(study.label_params, sort_keys=True)),
    ]
    out += ["## Settings", "", _md_table(["setting", "value"], settings_rows), ""]
    out += ["## Counts", ""]
    count_rows: list[tuple[str, str, int]] = [
        ("participants", stage, n) for stage, n in counts.participants_by_stage.items()
    ]
    count_rows.append(("participants", "all", sum(counts.participants_by_stage.values())))
    count_rows += [("responses", kind, n) for kind, n in counts.responses_by_kind.items()]
    count_rows.append(("responses", "all", counts.responses))
    count_rows += [("stimuli", "all", counts.stimuli), ("batches", "all", counts.batches)]
    if study.trial_type == Study.TrialType.CATEGORICAL:
        count_rows += [
            ("annotations", "used by the method", counts.annotations),
            ("soft labels", "stored under the method", counts.soft_labels),
        ]
    count_rows += [("analysis results", k, n) for k, n in counts.analysis_results_by_kind.items()]
    out += [_md_table(["what", "which", "count"], count_rows), ""]
    out += ["## Files", ""]
    out.append(
        _md_table(
            ["file", "rows", "contents"],
            [(m.name, member_rows(m, counts), m.description) for m in members],
        )
    )
    out += ["", "## Column dictionary", ""]
    for m in members:
        if m.name not in headers:
            continue
        out += [f"### {m.name}", ""]
        rows = [(f"`{c}`", column_meaning(m, c, study.classes)) for c in headers[m.name]]
        out += [_md_table(["column", "meaning"], rows), ""]
    if any(m.fmt in ("json", "jsonl") for m in members):
        out += [
            "The JSON and JSON Lines files hold the same fields as the CSV of the same name "
            "(`probs` is the list of class probabilities; JSON values are not re-encoded).",
            "",
        ]
    out += ["## Methods and parameters", ""]
    if study.trial_type == Study.TrialType.CATEGORICAL:
        params = ", ".join(f"{k} = {v}" for k, v in method.params().items())
        summary = CONSTRUCTION_SUMMARIES.get(method.name, "see the docs section below")
        out += [
            f"Soft labels: construction `{method.name}` ({params}): {summary}. Each annotation "
            "(top class and percent, optional second class and percent, classes ticked "
            "impossible) becomes a probability vector over the classes; label smoothing ε, when "
            "above 0, then gives v·(1 - ε) + ε/K. A stimulus's soft label is the arithmetic mean "
            "of its annotation vectors, repeats counted as extra annotations unless "
            "include_repeats is False. The exact definitions, with worked examples, are in "
            "H-Mix's documentation, at the version under Provenance: the construction in "
            f"`{CONSTRUCTION_DOCS.get(method.name, METHODS_DOCS)}`, label smoothing in "
            f"`{SMOOTHING_DOCS}` and the aggregation in `{AGGREGATION_DOCS}`; the "
            "implementation is `analysis/aggregation.py`.",
            "",
            "soft-labels.npy is laid out like CIFAR-10H's `cifar10h-probs.npy`: an N x K array "
            "of float64 (little-endian, C order, .npy format 1.0), one row per stimulus, the K "
            "columns in the class order above; row i is the stimulus on row i of "
            "soft-labels.index.csv (sorted by stimulus key). Load it with `numpy.load`.",
            "",
        ]
    else:
        analysis_docs = ANALYSIS_DOCS[ANALYSIS_WHAT[Study.TrialType(study.trial_type)]]
        out += [
            "The analysis results are recomputed from the stored responses whenever a response "
            "is recorded; each row carries its own parameters in `params` and the responses it "
            "used in `n`. How each field is computed is defined in H-Mix's documentation, at "
            f"the version under Provenance: `{analysis_docs}`; the implementation is "
            "`analysis/summaries.py` and `analysis/scoring.py`.",
            "",
        ]
    version = source_version()
    out += [
        "## Provenance",
        "",
        _md_table(
            ["field", "value"],
            [
                ("H-Mix version", version.version),
                ("version from", version.source),
                ("package version", version.package),
                ("built at (UTC)", f"{built_at:%Y-%m-%dT%H:%M:%SZ}"),
            ],
        ),
        "",
    ]
    return "\n".join(out)


# --- writing ------------------------------------------------------------------------------------


def write_chunks(
    chunks: Iterable[str | bytes],
    fh: IO[bytes],
    *,
    on_rows: Callable[[int], None] | None = None,
    every: int = REPORT_EVERY,
) -> int:
    """Write an export stream to `fh`, WRITE_BUFFER bytes at a time; returns the rows written.

    A chunk is one row, or, from the batched writers, an exports Chunk that knows how many rows
    it holds; `on_rows(n)` is told every `every` rows (and once for the rest at the end).
    """
    buf = bytearray()
    count = 0
    pending = 0
    for chunk in chunks:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        if len(data) >= WRITE_BUFFER:
            # A whole window of rows: written as it is rather than copied into the buffer.
            if buf:
                fh.write(buf)
                buf.clear()
            fh.write(data)
        else:
            buf += data
            if len(buf) >= WRITE_BUFFER:
                fh.write(buf)
                buf.clear()
        rows = chunk.rows if isinstance(chunk, export_sql.Chunk) else 1
        count += rows
        pending += rows
        if on_rows is not None and pending >= every:
            on_rows(pending)
            pending = 0
    if buf:
        fh.write(buf)
    if on_rows is not None and pending:
        on_rows(pending)
    return count


def _soft_label_npy_and_index(
    study: Study, method: Method, index_out: IO[bytes], body: IO[bytes]
) -> Iterator[int]:
    """One pass over the stored labels: the index CSV goes to `index_out`, the float64 rows to
    `body`; yields once per label. Reading both from the same pass keeps row i of the array and
    row i of the index the same stimulus even while a live study stores new labels."""
    classes = len(study.classes)
    index_out.write(exports._csv_line(list(INDEX_COLUMNS)).encode())
    labels = selectors.soft_label_list(study=study, method=method)
    for i, lab in enumerate(labels.iterator(chunk_size=exports.CHUNK)):
        probs = np.asarray(lab.probs, dtype="<f8")
        if probs.shape != (classes,):
            raise ValueError(f"Soft label of {lab.stimulus.key} has {probs.size} classes.")
        index_out.write(
            exports._csv_line(
                [i, exports.csv_safe(lab.stimulus.key), lab.n_annotations, lab.n_annotators]
            ).encode()
        )
        body.write(probs.tobytes())
        yield i


@dataclass(frozen=True)
class BundleResult:
    names: list[str]
    counts: BundleCounts
    total_rows: int


def _root(study: Study) -> str:
    return f"{study.slug}-dataset"


def bundle_write(
    *,
    study: Study,
    fh: IO[bytes],
    method: Method | None = None,
    progress: Progress | None = None,
    raw_ids: bool = False,
) -> BundleResult:
    """Write the study's bundle as a zip to `fh` (seekable or not): `<slug>-dataset/README.md`
    and the files of bundle_members, each streamed into the zip. `raw_ids` puts the
    participants' platform ids in the responses files (pseudonyms only, otherwise)."""
    method = method or selectors.study_default_method(study=study)
    members = bundle_members(study=study)
    counts = bundle_counts(study=study, method=method)
    headers = {
        m.name: _csv_header(study, m, method) for m in members if m.fmt in ("csv", "npy-index")
    }
    readme = datasheet(
        study=study,
        method=method,
        counts=counts,
        members=members,
        headers=headers,
        built_at=timezone.now(),
        raw_ids=raw_ids,
    )
    root = _root(study)
    names = [f"{root}/README.md"]

    if progress is not None:
        progress.start(bundle_rows(members, counts))

    def tick(member: Member) -> Callable[[int], None] | None:
        if progress is None:
            return None
        report = progress
        return lambda n: report.advance(n, member.name)

    # force_zip64: member sizes are unknown up front and may pass 2 GiB for large studies.
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(names[0], "w") as out:
            out.write(readme.encode())
        for m in members:
            name = f"{root}/{m.name}"
            if m.fmt == "npy":
                continue  # written with its index, from the same pass
            if m.fmt == "npy-index":
                _write_npy_pair(zf, root, study, method, tick(m))
                names += [name, f"{root}/soft-labels.npy"]
                continue
            stream = exports.export_stream(
                study=study, what=m.what, fmt=m.fmt, method=method, raw_ids=raw_ids
            )
            with zf.open(name, "w", force_zip64=True) as out:
                write_chunks(stream, out, on_rows=tick(m))
            names.append(name)
    return BundleResult(names=names, counts=counts, total_rows=bundle_rows(members, counts))


def _write_npy_pair(
    zf: zipfile.ZipFile,
    root: str,
    study: Study,
    method: Method,
    on_rows: Callable[[int], None] | None,
) -> None:
    # The index can go straight into the zip; the array's header needs the row count first, so
    # its rows wait in a temporary file (on disk, not in memory) until the pass is over.
    with tempfile.TemporaryFile() as body:
        n = 0
        with zf.open(f"{root}/soft-labels.index.csv", "w", force_zip64=True) as index_out:
            pending = 0
            for _ in _soft_label_npy_and_index(study, method, index_out, body):
                n += 1
                pending += 1
                if on_rows is not None and pending >= REPORT_EVERY:
                    on_rows(pending)
                    pending = 0
            if on_rows is not None and pending:
                on_rows(pending)
        body.seek(0)
        with zf.open(f"{root}/soft-labels.npy", "w", force_zip64=True) as out:
            out.write(exports._npy_header(n, len(study.classes)))
            while block := body.read(WRITE_BUFFER):
                out.write(block)
