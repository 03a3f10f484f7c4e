"""How exports name a participant without their platform id or their session token (pure).

A pseudonym is a keyed hash (HMAC-SHA256, RFC 2104) of the participant's platform id within
their study, truncated to PSEUDONYM_HEX hex digits: the same participant always gets the same
pseudonym, nobody without the key can compute it from a Prolific or MTurk id, and the same
worker in two studies gets two unrelated pseudonyms (the study is part of the message), so
separately published datasets cannot be joined on it. A participant without a platform id
(direct link) is hashed by their session token, which the hash does not reveal.
"""

import hashlib
import hmac
from typing import Final

# 64 bits: within one study of n participants, two share a pseudonym with probability about
# n^2 / 2^65 (under 1e-9 for n = 100,000).
PSEUDONYM_HEX: Final = 16


def pseudonym(*, key: str, study_id: int, platform: str, external_id: str, token: str) -> str:
    if external_id:
        message = f"{study_id}\x1f{platform}\x1f{external_id}"
    else:
        message = f"{study_id}\x1ftoken\x1f{token}"
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX]
