"""Which batch a new participant gets. One small function so that other strategies
(e.g. uncertainty-driven: send people where the soft labels are least certain) can replace it.
"""

from collections.abc import Sequence


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
