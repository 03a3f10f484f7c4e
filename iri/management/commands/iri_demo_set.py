from typing import Any

from django.core.management.base import BaseCommand, CommandError

from iri import services


class Command(BaseCommand):
    help = (
        "Regenerate iri/demo_set/: a standard and a robust small CNN trained on the demo shapes "
        "and their IRIs (5,000 steps, η = 1), the set seed_demo imports without PyTorch."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            services.torch_require()
        except services.ApplicationError as exc:
            raise CommandError(exc.message) from exc
        from iri import demo

        made = demo.demo_set(demo.COMMITTED)
        demo.write_demo_set(made)
        for name, info in made.models.items():
            self.stdout.write(
                f"{name}: training accuracy {info['train_accuracy']:.0%} "
                f"({info['test_accuracy']:.0%} on held-out shapes), "
                f"{made.seconds_per_iri[name]:.2f} s per IRI"
            )
        self.stdout.write(f"Wrote {len(made.rows)} IRIs to {demo.DEMO_SET_DIR}")
