from __future__ import annotations

import pytest

from tests.helpers import ServerProcess, write_nearest_model


def _x2_and_x4(tmp_path_factory, prefix: str):
    d = tmp_path_factory.mktemp(f"{prefix}-models")
    for scale in (2, 4):
        write_nearest_model(d, f"{prefix}-x{scale}", scale)
    return d


@pytest.fixture(scope="session")
def nearest_models(tmp_path_factory):
    return _x2_and_x4(tmp_path_factory, "nearest")


@pytest.fixture(scope="session")
def sr_models(tmp_path_factory):
    """Nearest-neighbour stand-ins under the shipped names (sr-x2, sr-x4), so that defaults pick them."""
    return _x2_and_x4(tmp_path_factory, "sr")


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
