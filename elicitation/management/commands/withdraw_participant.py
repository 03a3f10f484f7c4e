from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation import privacy_selectors, privacy_services, selectors
from elicitation.models import ParticipantWithdrawal, Study
from hmix_site.common.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Withdraw a participant of a study: their responses are deleted or excluded from every "
        "label, analysis and export, which are then recomputed, and the withdrawal is logged. "
        "Runs as a researcher of the study (--by), with the same check as the dashboard and API."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="Study slug")
        parser.add_argument(
            "--participant",
            required=True,
            help="The participant's pseudonym (as in the exports), platform id or session token",
        )
        parser.add_argument(
            "--mode",
            required=True,
            choices=ParticipantWithdrawal.Mode.values,
            help="delete or exclude",
        )
        parser.add_argument(
            "--by", required=True, help="Username of the researcher withdrawing (logged)"
        )
        parser.add_argument("--reason", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["by"]).first()
        if user is None:
            raise CommandError(f"No account named {options['by']!r}.")
        try:
            study = selectors.study_get_by_slug(slug=options["study"])
        except Study.DoesNotExist:
            raise CommandError(f"No study {options['study']!r}.") from None
        participant = privacy_selectors.participant_find_by_reference(
            study=study, reference=options["participant"]
        )
        if participant is None:
            raise CommandError(f"No participant {options['participant']!r} in {study.slug!r}.")
        try:
            withdrawal = privacy_services.participant_withdraw(
                participant=participant,
                user_id=user.pk,
                mode=options["mode"],
                reason=options["reason"],
            )
        except PermissionDenied as exc:
            raise CommandError(f"Nothing was withdrawn: {exc}") from exc
        except ApplicationError as exc:
            raise CommandError(f"Nothing was withdrawn: {exc.message}") from exc
        except ValidationError as exc:
            raise CommandError(f"Nothing was withdrawn: {' '.join(exc.messages)}") from exc
        self.stdout.write(
            f"Withdrew participant {withdrawal.pseudonym} of {study.slug!r}: "
            f"{withdrawal.n_responses} responses {withdrawal.mode}d; labels and analyses are "
            "being recomputed."
        )
