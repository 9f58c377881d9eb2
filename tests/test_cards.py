"""The model card (cards/): its committed JSON Schema is in step, every shipped card validates, the registry refuses a
card that breaks it (and serves the others), and export refuses to write one."""
from __future__ import annotations

import json

import pytest

import cards
from app.config import Settings
from app.registry import Registry
from tests.helpers import ROOT, write_nearest_model


def test_the_committed_schema_is_the_models_schema():
    assert json.loads(cards.SCHEMA_PATH.read_text()) == cards.schema(), "stale: run python -m cards"
    props = cards.schema()["properties"]
    assert {"name", "task", "onnx", "scale", "inputs", "outputs"} <= set(props)
    assert set(cards.schema()["required"]) == {"name", "task"}


def test_every_shipped_card_validates():
    shipped = [p for p in (ROOT / "models").glob("*.json") if not p.name.endswith(".tokenizer.json")]
    assert shipped
    for p in shipped:
        card = cards.validate(json.loads(p.read_text()))
        assert card.name == p.stem


@pytest.mark.parametrize("change,words", [
    ({"task": "upscale"}, "task"),
    ({"scale": 0}, "scale"),
    ({"scale": None}, "needs 'scale'"),
    ({"name": "../evil"}, "name"),
    ({"onnx": {"file": "x.onnx", "sha256": "not-a-digest"}}, "onnx.sha256"),
    ({"inputs": [{"dtype": "float32"}]}, "inputs.0.name"),
])
def test_bad_cards_are_refused_with_the_field(change, words):
    card = {"name": "m", "task": "super-resolution", "scale": 4, **change}
    with pytest.raises(ValueError, match="invalid card") as e:
        cards.validate(card)
    assert words in str(e.value)


def test_the_registry_does_not_serve_a_model_whose_card_breaks_the_schema(tmp_path):
    write_nearest_model(tmp_path, "good-x4", 4)
    write_nearest_model(tmp_path, "bad-x4", 4)
    card = json.loads((tmp_path / "bad-x4.json").read_text())
    (tmp_path / "bad-x4.json").write_text(json.dumps({**card, "scale": 16}))
    reg = Registry(Settings(models_dir=tmp_path, warmup=False))
    reg.load()
    assert "good-x4" in reg.models and "bad-x4" not in reg.models
    assert "scale" in reg.failed["bad-x4"] and "invalid card" in reg.failed["bad-x4"]


def test_export_refuses_to_write_a_bad_card(tmp_path):
    pytest.importorskip("torch")
    from training.export import write_card

    onnx_path = write_nearest_model(tmp_path, "m-x4", 4)
    before = onnx_path.read_bytes()
    with pytest.raises(ValueError, match="scale"):
        write_card(onnx_path, {"name": "m-x4", "task": "super-resolution", "onnx": {"file": onnx_path.name}})
    assert onnx_path.read_bytes() == before  # nothing was written
