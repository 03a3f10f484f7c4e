import dataclasses
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis import quality, quality_selectors
from elicitation.models import Study


class Command(BaseCommand):
    help = (
        "Run the CIFAR-10S exclusion rules over a categorical study and report, per participant, "
        "whether they would be excluded and why. Nothing is changed: use "
        "`aggregate --exclude-flagged` to compute labels without them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="Study slug")
        parser.add_argument("--format", choices=["table", "json"], default="table", dest="fmt")
        parser.add_argument(
            "--excluded-only", action="store_true", help="List only the excluded participants"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study with slug {options['study']!r}.")
        if study.trial_type != Study.TrialType.CATEGORICAL:
            raise CommandError("The CIFAR-10S exclusion rules apply to categorical studies only.")
        reports = quality_selectors.study_quality_report(study=study)
        labels = quality_selectors.participant_labels(study=study)
        n_excluded = sum(r.excluded for r in reports)
        if options["excluded_only"]:
            reports = [r for r in reports if r.excluded]
        if options["fmt"] == "json":
            body = {
                "study": study.slug,
                "rule_set": quality.CIFAR10S_EXCLUSIONS,
                "participants": len(labels),
                "excluded": n_excluded,
                "report": [
                    {
                        **dataclasses.asdict(r),
                        "participant": labels[r.participant],
                        "participant_id": r.participant,
                    }
                    for r in reports
                ],
            }
            self.stdout.write(json.dumps(body, indent=1))
            return
        header = ("participant", "trials", "double", "zero", "out", "accuracy", "excluded", "why")
        table = [header]
        for r in reports:
            accuracy = "-" if r.accuracy is None else f"{r.accuracy:.3f}"
            table.append(
                (
                    labels[r.participant],
                    str(r.n_trials),
                    str(r.double_select),
                    str(r.zero_probability),
                    str(r.out_of_range),
                    accuracy,
                    "yes" if r.excluded else "no",
                    ", ".join(r.reasons),
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            cells = (c.ljust(w) for c, w in zip(row, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())
        self.stdout.write(
            f"{n_excluded} of {len(labels)} participants would be excluded "
            f"({quality.CIFAR10S_EXCLUSIONS})."
        )
