"""The model card: what NAME.json beside NAME.onnx says about the model (and the file's metadata_props hold).

One Pydantic model, imported by both sides: training/ writes cards through it (export refuses to write a card that
does not validate) and app/ reads them through it (the registry lists a model with a bad card under ``failed``
and serves the others). ``cards/model-card.schema.json`` is its JSON Schema, committed so that tools outside
Python can check a card; ``python -m cards`` rewrites it, and a test keeps it in step.

The fields every model shares are typed here; a task's own fields (a text encoder's tokenizer, a generator's
``text_encoder``) are typed where they are optional, and extra fields are kept (metrics, notes, evaluations).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_PATH = Path(__file__).with_name("model-card.schema.json")
Task = Literal["super-resolution", "degradation", "text-encoder", "text-to-image", "style-encoder"]
SCALED_TASKS = ("super-resolution", "degradation")


class OnnxFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    file: str = Field(description="the graph's file name, beside the card")
    opset: int | None = Field(None, ge=7)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="of the file; the registry checks it (GAN_VERIFY_SHA256)")
    bytes: int | None = Field(None, ge=0)


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    dtype: str | None = None
    shape: list[int | str] | None = None


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow", title="Model card")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="the model's name: NAME.json, NAME.onnx")
    task: Task
    description: str = ""
    onnx: OnnxFile | None = Field(None, description="the graph file; default NAME.onnx")
    scale: int | None = Field(None, ge=1, le=8, description="super-resolution and degradation: the factor")
    arch: str | None = None
    params: int | None = Field(None, ge=0)
    flops_per_input_pixel: float | None = Field(None, ge=0)
    net_config: dict[str, Any] | None = None
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    precision: Literal["fp32", "fp16", "int8"] | None = None
    variant_of: str | None = Field(None, description="a lower-precision copy of this model")
    domain: str | None = Field(None, description="what the model is specialised for (e.g. faces); not a default upscaler")
    training: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    created: str | None = None
    notes: str | None = None
    # text models
    text_encoder: str | None = Field(None, description="text-to-image: the name of its text encoder")
    z_dim: int | None = Field(None, ge=1, description="text-to-image and style-encoder: the noise length")
    size: int | None = Field(None, ge=1, description="text-to-image: the side of its images")
    generator: str | None = Field(None, description="style-encoder: the text-to-image model it inverts")
    tokenizer: str | None = Field(None, description="text-encoder: its tokenizers JSON file, beside the card")
    max_length: int | None = Field(None, ge=1, description="text-encoder: tokens per prompt")

    @model_validator(mode="after")
    def _task_fields(self) -> ModelCard:
        if self.task in SCALED_TASKS and self.scale is None:
            raise ValueError(f"a {self.task} card needs 'scale'")
        if self.task == "style-encoder" and not self.generator:
            raise ValueError("a style-encoder card needs 'generator'")
        return self


def validate(card: dict) -> ModelCard:
    """The card as a ModelCard; ValueError with every problem in one line."""
    try:
        return ModelCard.model_validate(card)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'card'}: {err['msg']}" for err in e.errors())
        raise ValueError(f"invalid card: {problems}") from None


def schema() -> dict:
    return ModelCard.model_json_schema()


def schema_text() -> str:
    return json.dumps(schema(), indent=2) + "\n"
