"""The pure batch layout (elicitation/strategies.py): no database."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from elicitation.strategies import batch_sizes


@pytest.mark.parametrize(
    ("n_stimuli", "target", "sizes"),
    [
        (34, 8, [9, 9, 8, 8]),  # 4 × 8.5 is closer to 8 than 5 × 6.8
        (36, 8, [8, 7, 7, 7, 7]),  # 5 × 7.2 is closer to 8 than 4 × 9
        (1000, 25, [25] * 40),  # CIFAR-10S: an exact split stays exact
        (4, 3, [2, 2]),  # a tie (4 × 1 or 2 × 2 away) takes the smaller batches
        (5, 2, [2, 2, 1]),
        (3, 10, [3]),  # fewer stimuli than one batch: one batch of all of them
        (1, 1, [1]),
        (0, 5, []),
    ],
)
def test_batch_sizes_come_closest_to_the_target_and_differ_by_at_most_one(
    n_stimuli: int, target: int, sizes: list[int]
) -> None:
    assert batch_sizes(n_stimuli, target) == sizes


@given(n_stimuli=st.integers(1, 5000), target=st.integers(1, 500))
def test_batch_sizes_cover_every_stimulus_once_in_balanced_batches(
    n_stimuli: int, target: int
) -> None:
    # when
    sizes = batch_sizes(n_stimuli, target)
    # then
    assert sum(sizes) == n_stimuli
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)
    assert len(sizes) in {max(1, n_stimuli // target), -(-n_stimuli // target)}


def test_batch_sizes_refuse_a_target_below_one() -> None:
    with pytest.raises(ValueError, match="target must be at least 1, got 0"):
        batch_sizes(5, 0)
