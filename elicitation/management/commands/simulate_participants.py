import json
from contextlib import nullcontext
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation.models import Study
from elicitation.simulation import local_server, simulate


class Command(BaseCommand):
    help = (
        "Pilot a study with simulated participants going through the real HTTP journey. "
        "Prints one JSON line last with completed, responses, errors, trials_per_s and latency "
        "percentiles of response submissions."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True)
        parser.add_argument("--participants", type=int, default=10)
        parser.add_argument("--concurrency", type=int, default=4)
        parser.add_argument("--base-url", help="A running H-Mix site (default: start one here)")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"No study with slug {options['study']!r}.")
        if options["participants"] < 1 or options["concurrency"] < 1:
            raise CommandError("--participants and --concurrency must be at least 1.")
        server = nullcontext(options["base_url"]) if options["base_url"] else local_server()
        with server as base_url:
            result = simulate(
                study=study,
                participants=options["participants"],
                concurrency=options["concurrency"],
                base_url=base_url,
                seed=options["seed"],
            )
        for message in result.pop("error_messages"):
            self.stderr.write(message)
        self.stdout.write(json.dumps(result))
