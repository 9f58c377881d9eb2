"""Training side of the project: data, networks, losses, trainers, evaluation and ONNX export.

Needs the ``train`` extra (torch). Serving (``app/``) never imports this package; the only thing the two
share is the artifact pair ``models/NAME.onnx`` + ``models/NAME.json``.
"""
