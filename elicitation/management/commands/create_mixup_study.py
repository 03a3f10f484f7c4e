from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation import services, stimulus_services
from elicitation.defaults import categorical_study_texts
from elicitation.models import ImageSet, Study
from hmix_site.common.exceptions import ApplicationError


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


class Command(BaseCommand):
    help = (
        "Create a categorical soft-label study on mixup images generated from an image set, "
        "split into batches; --live opens it to participants."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--title", required=True)
        parser.add_argument("--owner", required=True, help="Researcher username")
        parser.add_argument("--image-set", required=True)
        parser.add_argument("--n-pairs", type=int, required=True, help="Image pairs to mix")
        parser.add_argument("--lambdas", type=_floats, default=[0.1, 0.25, 0.5, 0.75, 0.9])
        parser.add_argument(
            "--plain-per-class", type=int, default=0, help="Also show N unmixed images per class"
        )
        parser.add_argument("--batch-size", type=int, default=25)
        parser.add_argument("--participants-per-batch", type=int, default=6)
        parser.add_argument("--repeats", type=int, default=2)
        parser.add_argument("--completion-code", default="")
        parser.add_argument(
            "--completion-url",
            default="https://app.prolific.com/submissions/complete?cc={code}",
            help="Prolific's completion URL ({code}: the completion code).",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--live", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = get_user_model().objects.filter(username=options["owner"]).first()
        if owner is None:
            raise CommandError(f"No user {options['owner']!r} (create it with createsuperuser).")
        image_set = ImageSet.objects.filter(name=options["image_set"]).first()
        if image_set is None:
            raise CommandError(f"No image set {options['image_set']!r} (see import_images).")
        study = services.study_create(
            slug=options["slug"],
            title=options["title"],
            trial_type=Study.TrialType.CATEGORICAL,
            owner_id=owner.pk,
            classes=image_set.classes,
            participants_per_batch=options["participants_per_batch"],
            repeats=options["repeats"],
            completion_code=options["completion_code"],
            prolific_completion_url=(
                options["completion_url"] if options["completion_code"] else ""
            ),
            **categorical_study_texts(),
        )
        try:
            stimuli = stimulus_services.stimuli_generate_mixup(
                study=study,
                image_set=image_set,
                lambdas=options["lambdas"],
                n_pairs=options["n_pairs"],
                seed=options["seed"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["plain_per_class"]:
            stimuli += stimulus_services.stimuli_add_plain(
                study=study,
                image_set=image_set,
                per_class=options["plain_per_class"],
                seed=options["seed"],
            )
        batches = services.batches_build(
            study=study, stimuli=stimuli, batch_size=options["batch_size"], seed=options["seed"]
        )
        if options["live"]:
            try:
                services.study_set_status(study=study, status=Study.Status.LIVE)
            except ApplicationError as exc:
                raise CommandError(
                    f"Created '{study.slug}' as a draft, but it cannot go live: {exc.message}"
                ) from exc
        self.stdout.write(
            f"Created '{study.slug}': {len(stimuli)} stimuli in {len(batches)} batches, "
            f"status {study.status}. Edit consent, instructions and the comprehension check in "
            f"the admin before launching."
        )
