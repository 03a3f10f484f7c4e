from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation.demo import DEMO_PASSWORD, DEMO_SLUG, DEMO_USERNAME, demo_seed
from hmix_site.common.exceptions import ApplicationError


class Command(BaseCommand):
    help = f"Create the demo study '{DEMO_SLUG}' and a researcher login (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--iris",
            choices=["auto", "generate", "committed"],
            default=None,
            help="IRIs of the E/F demos: generated now (needs PyTorch), the committed set, or "
            "auto (generated when PyTorch is installed; the HMIX_DEMO_IRIS setting).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            info = demo_seed(iris=options["iris"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        base = options["base_url"].rstrip("/")
        study = info.study
        verb = "Created" if info.created else "Already present:"
        self.stdout.write(
            f"{verb} study '{study.slug}' with {study.stimuli.count()} stimuli in "
            f"{study.batches.count()} batches."
        )
        self.stdout.write(f"Participant link:  {base}/s/{DEMO_SLUG}/")
        self.stdout.write(
            f"  (as Prolific:    {base}/s/{DEMO_SLUG}/?PROLIFIC_PID=demo1&STUDY_ID=s&SESSION_ID=x)"
        )
        self.stdout.write(
            f"Researcher login:  {base}/admin/  user '{DEMO_USERNAME}', password '{DEMO_PASSWORD}'"
        )
        for other, created in info.others:
            state = "created" if created else "present"
            self.stdout.write(f"  {other.trial_type:<20} {base}/s/{other.slug}/  ({state})")
        self.stdout.write(f"Dashboard:         {base}/dashboard/  (same login)")
        self.stdout.write(f"API docs:          {base}/api/docs/")
