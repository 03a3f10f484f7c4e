"""Which batch a new participant gets. One small function so that other strategies
(e.g. uncertainty-driven: send people where the soft labels are least certain) can replace it.
"""

from collections.abc import Sequence
from fractions import Fraction


def choose_batch(loads: Sequence[tuple[int, int, int]], *, participant_id: int) -> list[int]:
    """Balanced assignment: batch ids with room, least loaded (relative to target) first.

    `loads` holds (batch_id, slots_taken, target). Ties keep the given order (batch number), so
    batches fill evenly in turn. The caller tries the ids in order and re-checks each under a lock.
    """
    del participant_id  # unused by this strategy; part of the signature for smarter ones
    open_batches = [
        (load / target, i, batch_id)
        for i, (batch_id, load, target) in enumerate(loads)
        if load < target
    ]
    return [batch_id for _, _, batch_id in sorted(open_batches)]


def batch_sizes(n_stimuli: int, target: int) -> list[int]:
    """How many stimuli each batch gets: sizes that differ by at most one, larger ones first.

    `target` is the batch size the researcher asked for. The number of batches is the one whose
    even split comes closest to it (floor or ceiling of n / target; on a tie the smaller batches,
    so no participant gets more work than asked), never fewer than one. 34 stimuli at 8 give
    9/9/8/8 (4 batches of 8.5 on average are closer to 8 than 5 of 6.8), not 8/8/8/8/2, where
    the last batch's participants would do a quarter of the work of everyone else.
    """
    if target < 1:
        raise ValueError(f"target must be at least 1, got {target}")
    if n_stimuli <= 0:
        return []
    fewer = max(1, n_stimuli // target)
    more = -(-n_stimuli // target)  # ceiling division
    n_batches = min((more, fewer), key=lambda k: abs(Fraction(n_stimuli, k) - target))
    base, extra = divmod(n_stimuli, n_batches)
    return [base + 1] * extra + [base] * (n_batches - extra)
