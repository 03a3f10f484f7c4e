import json
from contextlib import nullcontext
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation.models import Study
from elicitation.simulation import local_server, simulate


def _answers(text: str) -> list[int]:
    try:
        return [int(a) for a in text.split(",") if a.strip()]
    except ValueError as exc:
        raise CommandError(f"--comprehension-answers must be integers like 0,2: {text!r}") from exc


class Command(BaseCommand):
    help = (
        "Pilot a study with simulated participants going through the real HTTP journey. "
        "Prints one JSON line last: completed, errors (participants that did not complete, with "
        "reasons on stderr), lost (completed but answers not all stored), requests per second "
        "and latency percentiles per request kind. Exits non-zero if errors or lost are above 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, help="The study's slug")
        parser.add_argument("--participants", type=int, default=10)
        parser.add_argument("--concurrency", type=int, default=4)
        parser.add_argument("--base-url", help="A running H-Mix site (default: start one here)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--allow-full",
            action="store_true",
            help="Participants turned away as 'full' are counted as full, not as errors",
        )
        parser.add_argument(
            "--no-oracle",
            action="store_true",
            help="Random valid answers and no database use at all (load against a remote site); "
            "lost is then checked against the progress the server reports",
        )
        parser.add_argument(
            "--comprehension-answers",
            help="With --no-oracle: the correct option per comprehension question, e.g. 0,2",
        )
        parser.add_argument(
            "--no-keepalive",
            action="store_true",
            help="A new TCP connection per request (to measure what keep-alive is worth)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["participants"] < 1 or options["concurrency"] < 1:
            raise CommandError("--participants and --concurrency must be at least 1.")
        study: Study | str
        if options["no_oracle"]:
            study = options["study"]
        else:
            found = Study.objects.filter(slug=options["study"]).first()
            if found is None:
                raise CommandError(f"No study with slug {options['study']!r}.")
            study = found
        answers = options["comprehension_answers"]
        server = nullcontext(options["base_url"]) if options["base_url"] else local_server()
        with server as base_url:
            result = simulate(
                study=study,
                participants=options["participants"],
                concurrency=options["concurrency"],
                base_url=base_url,
                seed=options["seed"],
                oracle=not options["no_oracle"],
                allow_full=options["allow_full"],
                comprehension_answers=None if answers is None else _answers(answers),
                keepalive=not options["no_keepalive"],
            )
        for message in [*result.pop("error_messages"), *result.pop("lost_messages")]:
            self.stderr.write(message)
        self.stdout.write(json.dumps(result))
        if result["errors"] or result["lost"]:
            raise CommandError(
                f"{result['errors']} of {result['participants']} participants did not complete "
                f"and {result['lost']} completed ones lost answers (details above)."
            )
