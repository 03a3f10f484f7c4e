#!/usr/bin/env python
import os
import sys


def main() -> None:
    # Production unless told otherwise: a forgotten variable must not run with DEBUG and the
    # public development key. `make demo` and the tests name their settings module.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hmix_site.settings.production")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
