from collections import Counter
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation import imaging, iri_manifest, selectors, stimulus_services
from elicitation.models import Study


class Command(BaseCommand):
    help = (
        "Import an IRI set into an iri_2afc or iri_cluster study: a folder or zip of PNGs plus "
        "a CSV or JSON manifest (columns iri, target, start, model, layer, regime, regulariser, "
        "seed). Every bad row is reported and nothing is imported unless all rows are valid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="Study slug")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--folder", type=Path, help="Folder holding the images")
        source.add_argument("--zip", type=Path, help="Zip holding the images")
        parser.add_argument(
            "--manifest", type=Path, required=True, help="manifest .csv or .json (by extension)"
        )
        parser.add_argument("--seed", type=int, default=0, help="Clustering: set formation seed")
        parser.add_argument(
            "--max-pixels",
            type=int,
            default=imaging.DEFAULT_MAX_PIXELS,
            help="Refuse images with more pixels than this",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            study = selectors.study_get_by_slug(slug=options["study"])
        except Study.DoesNotExist as exc:
            raise CommandError(f"No study {options['study']!r}.") from exc
        try:
            manifest_format = iri_manifest.manifest_format_for(options["manifest"])
            manifest = options["manifest"].read_bytes()
            files = stimulus_services.iri_files_load(
                folder=options["folder"], zip_file=options["zip"]
            )
        except (ValueError, OSError) as exc:  # ImageImportError is a ValueError
            raise CommandError(str(exc)) from exc
        try:
            stimuli = stimulus_services.iri_import(
                study=study,
                files=files,
                manifest=manifest,
                manifest_format=manifest_format,
                max_pixels=options["max_pixels"],
                seed=options["seed"],
            )
        except ValidationError as exc:
            problems = "\n".join(f"  {message}" for message in exc.messages)
            raise CommandError(
                f"Nothing was imported: {len(exc.messages)} problem(s):\n{problems}"
            ) from exc

        # The import succeeded, so the manifest parses; read it again for the summary.
        parsed = iri_manifest.parse_manifest(manifest, manifest_format=manifest_format)
        for warning in parsed.warnings:
            self.stdout.write(f"Warning: {warning}")
        if study.trial_type == Study.TrialType.IRI_2AFC:
            self.stdout.write(f"Imported {len(stimuli)} IRIs into '{study.slug}'.")
            groups = Counter(
                (s.meta["model"], s.meta["layer"], s.meta["regime"], s.meta["regulariser"])
                for s in stimuli
            )
            for (model, layer, regime, regulariser), count in sorted(groups.items()):
                self.stdout.write(
                    f"  {count} x model={model} layer={layer} regime={regime} "
                    f"regulariser={regulariser}"
                )
            return
        used = sum(len(s.meta["iris"]) for s in stimuli)
        self.stdout.write(
            f"Imported {len(stimuli)} clustering sets ({used} IRIs) into '{study.slug}'; "
            f"{len(parsed.entries) - used} IRIs left over."
        )
        for stimulus in stimuli:
            self.stdout.write(f"  {stimulus.key}: {', '.join(stimulus.meta['targets'])}")
