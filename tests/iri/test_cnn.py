"""iri.cnn: the small CNN, its ℓ2 PGD training and TorchScript round trip (pure, no database)."""

import numpy as np
import pytest
import torch

from iri import cnn
from iri import generation as g

SIZE = 16


def _toy_set(n_per_class: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two easy classes: a bright square in the top or the bottom half, on dark noise (the
    training's horizontal flips keep each class)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            image = rng.integers(0, 80, (SIZE, SIZE, 3)).astype(np.uint8)
            left = rng.integers(0, SIZE - 6)
            top = rng.integers(0, 3) + (SIZE // 2 if label else 0)
            image[top : top + 5, left : left + 5] = 255
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def toy() -> tuple[np.ndarray, np.ndarray]:
    return _toy_set()


def test_standard_training_learns_the_toy_set(toy):
    images, labels = toy
    result = cnn.train(
        images, labels, n_classes=2, settings=cnn.TrainSettings(epochs=15, width=8, seed=0)
    )

    assert result.train_accuracy >= 0.9
    assert result.settings.regime == "standard"
    assert result.model.fc.out_features == 2


def test_pgd_stays_in_the_l2_ball_and_in_range(toy):
    images, labels = toy
    model = cnn.SmallCNN(2, width=8).eval()
    x = g.to_tensor(images)
    y = torch.as_tensor(labels)

    adv = cnn.pgd_l2(model, x, y, epsilon=0.5, steps=4, generator=torch.Generator().manual_seed(0))

    norms = (adv - x).flatten(1).norm(dim=1)
    assert float(norms.max()) <= 0.5 + 1e-5
    assert float(norms.mean()) > 0.1
    assert float(adv.min()) >= 0.0
    assert float(adv.max()) <= 1.0
    with torch.no_grad():
        loss_clean = torch.nn.functional.cross_entropy(model(x), y)
        loss_adv = torch.nn.functional.cross_entropy(model(adv), y)
    assert float(loss_adv) > float(loss_clean)


def test_robust_training_is_deterministic_and_differs_from_standard(toy):
    images, labels = toy
    settings = cnn.TrainSettings(regime="robust", epochs=2, width=8, pgd_steps=2, seed=1)

    first = cnn.train(images, labels, n_classes=2, settings=settings)
    again = cnn.train(images, labels, n_classes=2, settings=settings)
    standard = cnn.train(
        images,
        labels,
        n_classes=2,
        settings=cnn.TrainSettings(epochs=2, width=8, seed=1),
    )

    for a, b in zip(first.model.parameters(), again.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(first.model.conv1.weight, standard.model.conv1.weight)


def test_torchscript_round_trip_keeps_both_layers(toy):
    images, _ = toy
    model = cnn.SmallCNN(3, width=8, mean=(0.2, 0.3, 0.4), std=(0.5, 0.5, 0.5)).eval()
    x = g.to_tensor(images[:4])

    loaded = cnn.load_torchscript(cnn.to_torchscript(model))

    with torch.no_grad():
        torch.testing.assert_close(loaded.penultimate(x), model.penultimate(x))
        torch.testing.assert_close(loaded(x), model(x))
    assert cnn.check_layer(loaded, layer="penultimate", input_size=SIZE) == (32,)
    assert cnn.check_layer(loaded, layer="forward", input_size=SIZE) == (3,)


def test_the_penultimate_relu_passes_gradients_where_inactive():
    model = cnn.SmallCNN(2, width=4).eval()
    x = torch.full((1, 3, SIZE, SIZE), 0.5, requires_grad=True)

    pre = model._trunk(x)
    features = model.penultimate(x)
    (grad_units,) = torch.autograd.grad(features.sum(), x)

    # the value is the ReLU's ...
    torch.testing.assert_close(features, torch.relu(pre).mean(dim=(2, 3)))
    # ... but a unit that is inactive everywhere still moves the input (a plain ReLU: zero)
    inactive = (pre <= 0).flatten(2).all(dim=2)[0]
    assert bool(inactive.any())
    unit = int(inactive.nonzero()[0])
    (grad,) = torch.autograd.grad(model.penultimate(x)[0, unit], x)
    assert float(grad.abs().sum()) > 0
    assert float(grad_units.abs().sum()) > 0


def test_a_file_that_is_not_torchscript_is_refused():
    with pytest.raises(ValueError, match="not a TorchScript model file"):
        cnn.load_torchscript(b"not a model")


def test_a_missing_or_failing_layer_is_refused():
    loaded = cnn.load_torchscript(cnn.to_torchscript(cnn.SmallCNN(2, width=4)))
    # a model for 32×32 inputs only: a linear layer on the flattened image
    fixed = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2))
    fixed_loaded = cnn.load_torchscript(cnn.to_torchscript(fixed))

    with pytest.raises(ValueError, match="no layer \\(method\\) 'layer9'"):
        cnn.check_layer(loaded, layer="layer9", input_size=SIZE)
    with pytest.raises(ValueError, match="layer 'forward' fails on a 3×16×16 input"):
        cnn.check_layer(fixed_loaded, layer="forward", input_size=SIZE)
    assert cnn.check_layer(fixed_loaded, layer="forward", input_size=32) == (2,)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("regime", "fgsm", "unknown regime 'fgsm'"), ("epochs", 0, "must be at least 1")],
)
def test_bad_training_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        cnn.TrainSettings(**{field: value})
