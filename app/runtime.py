"""ONNX Runtime session wrapper: provider choice, thread settings, warm-up, metadata."""
from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

log = logging.getLogger("app.runtime")
GPU_PROVIDERS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}


def choose_providers(preferred: list[str]) -> list[str]:
    """The preferred providers this onnxruntime build has, in order; CPU is always the last resort."""
    available = set(ort.get_available_providers())
    chosen = [p for p in preferred if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


class Session:
    """One model file loaded for inference. ``run`` is thread-safe (ORT sessions are)."""

    def __init__(self, path: str, providers: list[str], intra_op_threads: int = 0) -> None:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            opts.intra_op_num_threads = intra_op_threads
        # Whole images run at their own size, so shapes vary: cuDNN's exhaustive search per new shape would cost
        # more than it saves; its heuristic choice is made at once.
        chosen = [(p, {"cudnn_conv_algo_search": "HEURISTIC"}) if p == "CUDAExecutionProvider" else p
                  for p in choose_providers(providers)]
        self.session = ort.InferenceSession(path, sess_options=opts, providers=chosen)
        self.provider = self.session.get_providers()[0]
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_name = self.session.get_outputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        # On a GPU, IO binding: the batch goes to the device once and the output is allocated there by ORT,
        # with a single copy back; no intermediate host buffers.
        self.device = GPU_PROVIDERS.get(self.provider, "cpu")

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """One batch through the model: the arrays are its inputs in order (``image`` first)."""
        if self.device == "cpu":
            return self.session.run([self.output_name], dict(zip(self.input_names, inputs)))[0]
        return self.run_bound(*inputs)

    def run_bound(self, *inputs: np.ndarray) -> np.ndarray:
        binding = self.session.io_binding()
        for name, x in zip(self.input_names, inputs):
            binding.bind_cpu_input(name, np.ascontiguousarray(x))
        binding.bind_output(self.output_name, self.device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def warmup(self, batch: int, tile: int) -> None:
        """Run zeros of the serving shapes once, so the first request does not pay for initialisation."""
        extra = [np.zeros((batch, *i.shape[1:]), np.float32) for i in self.session.get_inputs()[1:]]
        self.run(np.zeros((batch, 3, tile, tile), np.float32), *extra)
