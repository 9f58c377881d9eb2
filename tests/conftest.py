from __future__ import annotations

import pytest

from tests.helpers import ServerProcess, write_nearest_model


@pytest.fixture(scope="session")
def nearest_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    write_nearest_model(d, "nearest-x2", 2)
    write_nearest_model(d, "nearest-x4", 4)
    return d


@pytest.fixture(scope="session")
def test_server(nearest_models):
    """A real server on the tiny nearest-neighbour models, with small limits to test them."""
    srv = ServerProcess({
        "GAN_MODELS_DIR": str(nearest_models), "GAN_MAX_BODY_BYTES": str(2_000_000),
        "GAN_MAX_INPUT_PIXELS": str(1_000_000), "GAN_MAX_OUTPUT_PIXELS": str(8_000_000),
        "GAN_TILE_SIZE": "32", "GAN_TILE_OVERLAP": "8",
    })
    yield srv
    srv.stop()
