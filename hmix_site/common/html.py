from functools import lru_cache

import nh3


# Every session read shows the study's consent and instructions; a study has a handful of
# texts, so cleaning each distinct text once per process keeps nh3 off the hot path.
@lru_cache(maxsize=512)
def clean_html(html: str) -> str:
    """Researcher-written HTML (consent, instructions) made safe to show to participants.

    Any researcher or collaborator can edit these texts, so scripts, event handlers and
    javascript: links are removed (ammonia's defaults via nh3) while formatting, links and
    images stay.
    """
    return nh3.clean(html)
