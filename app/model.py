"""A loaded model: its card, its ONNX Runtime session and the batcher in front of it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.batching import Batcher
from app.runtime import Session


@dataclass
class Model:
    name: str
    card: dict
    session: Session | None  # None for the degradation pipeline's worker, which runs no network
    batcher: Batcher
    tokenizer: Any = None  # text encoders: their tokenizers.Tokenizer (app/text_to_image.py)

    @property
    def scale(self) -> int:
        return int(self.card.get("scale", 1))

    @property
    def task(self) -> str:
        return self.card["task"]

    @property
    def net(self) -> Session:
        """The ONNX Runtime session: every model has one but the degradation pipeline's worker."""
        if self.session is None:
            raise RuntimeError(f"{self.name} runs no network")
        return self.session

    @property
    def provider(self) -> str:
        return self.session.provider if self.session else "CPU (numpy/OpenCV)"

    def describe(self) -> dict:
        return {**self.card, "provider": self.provider}
