"""HTTP inference service for the project's image GANs (ONNX Runtime; never imports torch)."""

__version__ = "0.1.0"
