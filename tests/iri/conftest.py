from collections.abc import Callable
from typing import Any

import pytest

from elicitation import imaging, stimulus_services
from elicitation.models import ImageSet
from iri import cnn, services
from iri.models import Network

# The real-worker fixture of the analysis tests (a `celery worker` process on the test
# database), shared rather than repeated.
from tests.analysis.conftest import celery_worker, celery_workers  # noqa: F401


@pytest.fixture
def shapes() -> ImageSet:
    """The demo shapes, two of each of the 8 classes (32×32)."""
    return stimulus_services.image_set_create(
        name="iri-shapes",
        source=ImageSet.Source.DEMO,
        images=imaging.generate_demo_images(per_class=2, seed=0),
    )


@pytest.fixture
def make_network(researcher: Any) -> Callable[..., Network]:
    """An uploaded (untrained, seeded) SmallCNN of the researcher's."""

    def make(*, name: str = "tiny", regime: str = "standard", seed: int = 0) -> Network:
        import torch

        torch.manual_seed(seed)
        data = cnn.to_torchscript(cnn.SmallCNN(8, width=8))
        return services.network_upload(
            owner_id=researcher.id,
            name=name,
            data=data,
            input_size=32,
            mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0],
            layer="penultimate",
            regime=regime,
        )

    return make
