import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analysis import quality_selectors, services
from analysis.management.commands._method import add_method_arguments, study_and_methods
from elicitation.models import Study


class Command(BaseCommand):
    help = (
        "Recompute a study's soft labels (categorical) or its interface analyses (mixing factor, "
        "midpoints, IRI alignment) from its stored responses (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_method_arguments(parser)
        parser.add_argument(
            "--exclude-flagged",
            action="store_true",
            help="Categorical: leave out the participants the CIFAR-10S exclusion rules flag "
            "(see quality_report)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study, methods = study_and_methods(options)
        excluded: set[int] = set()
        if options.get("exclude_flagged"):
            if study.trial_type != Study.TrialType.CATEGORICAL:
                raise CommandError("--exclude-flagged applies to categorical studies only.")
            excluded = quality_selectors.study_excluded_participant_ids(study=study)
        if study.trial_type != Study.TrialType.CATEGORICAL:
            n = services.study_analysis_recompute(study=study)
            self.stdout.write(
                json.dumps({"study": study.slug, "trial_type": study.trial_type, "results": n})
            )
            return
        # Every selected construction is computed from one read of the responses.
        n = services.study_aggregate(study=study, methods=methods, exclude_participant_ids=excluded)
        summary: dict[str, Any] = {"study": study.slug}
        if len(methods) == 1:
            summary |= {"method": methods[0].name, "params": methods[0].params()}
        else:
            summary["methods"] = [{"method": m.name, "params": m.params()} for m in methods]
        summary["labels"] = n
        if options.get("exclude_flagged"):
            summary["excluded_participants"] = len(excluded)
        self.stdout.write(json.dumps(summary))
