"""Where a network's forward pass runs: torch, ONNX Runtime or OpenVINO (on the CPU).

Our own networks (StarDist, the semantic U-Net, Noise2Void and CARE) are
exported to ONNX once per set of weights and cached (:mod:`.onnx_export`);
:class:`.runner.NetRunner` runs one forward pass with the chosen engine, and
``auto`` picks the engine measured fastest on this machine for that network
and input size, measured once and remembered (:mod:`.auto`). The segmenters and
predictors keep one place where their forward pass runs, and call the runner
there.
"""
