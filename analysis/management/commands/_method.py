from typing import Any

from django.core.management.base import CommandError, CommandParser

from analysis.aggregation import CONSTRUCTIONS, Method
from elicitation.models import Study


def add_method_arguments(parser: CommandParser) -> None:
    parser.add_argument("--study", required=True, help="Study slug")
    parser.add_argument(
        "--method",
        help="Construction name (default: the study's); `aggregate` also takes several, "
        "comma-separated, or `all`",
    )
    parser.add_argument("--gamma", type=float, help="Clamp mass γ (default 0.1)")
    parser.add_argument("--smoothing", type=float, help="Label smoothing ε (default 0)")
    parser.add_argument(
        "--exclude-repeats", action="store_true", help="Leave repeat trials out of the mean"
    )


def study_and_method(options: dict[str, Any]) -> tuple[Study, Method]:
    study = Study.objects.filter(slug=options["study"]).first()
    if study is None:
        raise CommandError(f"No study with slug {options['study']!r}.")
    params = dict(study.label_params)
    if options.get("gamma") is not None:
        params["gamma"] = options["gamma"]
    if options.get("smoothing") is not None:
        params["smoothing"] = options["smoothing"]
    if options.get("exclude_repeats"):
        params["include_repeats"] = False
    try:
        return study, Method.from_params(options.get("method") or study.label_method, params)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def study_and_methods(options: dict[str, Any]) -> tuple[Study, list[Method]]:
    """Like study_and_method, but --method may name several constructions, comma-separated,
    or `all`; the other options apply to each."""
    names = (options.get("method") or "").split(",")
    if names == ["all"]:
        names = list(CONSTRUCTIONS)
    if len(names) == 1:
        study, method = study_and_method(options)
        return study, [method]
    if any(not name.strip() for name in names):
        raise CommandError(f"--method {options.get('method')!r} names an empty construction.")
    methods = []
    for name in names:
        study, method = study_and_method({**options, "method": name.strip()})
        methods.append(method)
    return study, methods
