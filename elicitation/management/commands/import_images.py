from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from elicitation import imaging, stimulus_services
from elicitation.models import ImageSet


class Command(BaseCommand):
    help = (
        "Import base images into a named image set: a folder or zip laid out class/image.png, "
        "or CIFAR-10 'python version' batch files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Image set name (a slug)")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--folder", type=Path, help="root/<class>/<image>.png")
        source.add_argument("--zip", type=Path, help="a zip with <class>/<image>.png inside")
        source.add_argument("--cifar", type=Path, nargs="+", help="CIFAR-10 batch file(s)")
        parser.add_argument("--cifar-meta", type=Path, help="batches.meta (class names)")
        parser.add_argument("--limit-per-class", type=int, help="CIFAR: keep the first N")

    def handle(self, *args: Any, **options: Any) -> None:
        if ImageSet.objects.filter(name=options["name"]).exists():
            raise CommandError(f"An image set named {options['name']!r} already exists.")
        try:
            if options["folder"]:
                images = imaging.load_image_folder(options["folder"])
                source = ImageSet.Source.FOLDER
            elif options["zip"]:
                images = imaging.load_image_zip(options["zip"])
                source = ImageSet.Source.FOLDER
            else:
                images = imaging.load_cifar10_batches(
                    options["cifar"],
                    meta_path=options["cifar_meta"],
                    limit_per_class=options["limit_per_class"],
                )
                source = ImageSet.Source.CIFAR10
        except (imaging.ImageImportError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        image_set = stimulus_services.image_set_create(
            name=options["name"], source=source, images=images
        )
        self.stdout.write(
            f"Imported {len(images)} images of {len(image_set.classes)} classes into "
            f"'{image_set.name}': {', '.join(image_set.classes)}"
        )
