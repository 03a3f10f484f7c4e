import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from analysis import services
from analysis.management.commands._method import add_method_arguments, study_and_method
from elicitation.models import Study


class Command(BaseCommand):
    help = (
        "Recompute a study's soft labels (categorical) or its interface analyses (mixing factor, "
        "midpoints, IRI alignment) from its stored responses (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_method_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        study, method = study_and_method(options)
        if study.trial_type != Study.TrialType.CATEGORICAL:
            n = services.study_analysis_recompute(study=study)
            self.stdout.write(
                json.dumps({"study": study.slug, "trial_type": study.trial_type, "results": n})
            )
            return
        n = services.study_aggregate(study=study, method=method)
        self.stdout.write(
            json.dumps(
                {"study": study.slug, "method": method.name, "params": method.params(), "labels": n}
            )
        )
