import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation import legacy, legacy_services
from hmix_site.common.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Import a published CIFAR-10S or H-Mix raw CSV as a new (closed) study: stimuli keyed by "
        "the published filename or class pair, one participant per subject, one response per "
        "response row with its raw fields. A malformed file imports nothing and every bad row is "
        "reported with its line number."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The raw CSV file")
        parser.add_argument("--format", required=True, choices=legacy.FORMATS, dest="fmt")
        parser.add_argument("--study", required=True, help="Slug of the study to create")
        parser.add_argument(
            "--images", type=Path, help="Folder holding the published images (optional)"
        )
        parser.add_argument(
            "--replace", action="store_true", help="Delete an existing study with this slug first"
        )
        parser.add_argument(
            "--owner", help="Username of the study's owner (default: the first superuser)"
        )
        parser.add_argument("--title", help="Study title (default: named after the format)")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = _owner(options["owner"])
        path: Path = options["file"]
        started = time.perf_counter()
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                parsed = legacy.parse(options["fmt"], fh)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path} is not UTF-8 text: {exc}") from exc
        except legacy.LegacyFormatError as exc:
            raise CommandError(f"Nothing was imported: {exc}") from exc
        parsed_at = time.perf_counter()
        try:
            result = legacy_services.legacy_import(
                study_slug=options["study"],
                fmt=options["fmt"],
                source=parsed,
                owner=owner,
                images_dir=options["images"],
                replace=options["replace"],
                title=options["title"],
            )
        except ApplicationError as exc:
            raise CommandError(f"Nothing was imported: {exc.message}") from exc
        done = time.perf_counter()
        self.stdout.write(
            f"Imported '{result.study.slug}' ({options['fmt']}, {result.study.trial_type}): "
            f"{result.n_responses} responses ({result.n_repeats} repeats) from "
            f"{result.n_participants} participants in {result.n_batches} batches, "
            f"{result.n_stimuli} stimuli ({result.n_images} with images); "
            f"{result.n_skipped} of {result.n_rows} rows skipped (not responses)."
        )
        for subject, n in result.split_subjects.items():
            self.stdout.write(
                f"Subject {subject!r} has {n} sessions in the file (trial_index restarts); "
                f"imported as {n} participants: "
                + ", ".join(repr(legacy.session_key(subject, i)) for i in range(1, n + 1))
                + "."
            )
        self.stdout.write(
            f"Time: {done - started:.2f} s (parse {parsed_at - started:.2f} s, "
            f"write {done - parsed_at:.2f} s)."
        )


def _owner(username: str | None) -> AbstractBaseUser:
    users = get_user_model().objects
    if username:
        user = users.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return user
    # Imported data needs an owner who can see it; a superuser is the one account sure to exist
    # on a set-up site. No account is created behind the researcher's back.
    user = users.filter(is_superuser=True).order_by("pk").first()
    if user is None:
        raise CommandError(
            "No superuser to own the study: pass --owner USERNAME or run createsuperuser first."
        )
    return user
