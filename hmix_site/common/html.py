import nh3


def clean_html(html: str) -> str:
    """Researcher-written HTML (consent, instructions) made safe to show to participants.

    Any researcher or collaborator can edit these texts, so scripts, event handlers and
    javascript: links are removed (ammonia's defaults via nh3) while formatting, links and
    images stay.
    """
    return nh3.clean(html)
