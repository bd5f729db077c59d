"""The build stage (workflow/rules/build.smk): every artifact a measurement runs. PyTorch's reference
outputs, the ONNX export, ONNX Runtime's fusion, FP16 conversion and INT8 quantization, each checked for
parity before its file is kept (stages.py runs one stage end to end; the other modules do one job each),
and the ONNX Runtime session factory every engine shares.

May import the core modules, `inputs` and `accuracy`; never `measure` or `report`.
"""
