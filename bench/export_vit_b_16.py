#!/usr/bin/python3
"""Exports torchvision vit_b_16 (random weights) to ONNX at opsets 13 and 17 with a dynamic batch.

Used by `npm run bench:import` (bench/import-speed.ts); not run in CI. Needs Debian's
python3-torch, python3-torchvision and python3-onnx:  /usr/bin/python3 bench/export_vit_b_16.py
Writes bench/models/vit_b_16_opset{13,17}.onnx (gitignored, ~346 MB each).
"""
import os
import sys

import torch
import torchvision

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")


def build() -> torch.nn.Module:
    torch.manual_seed(0)
    m = torchvision.models.vit_b_16(weights=None)
    # torchvision zero-initialises the classifier head, so every logit would be 0; reseed it.
    head = m.heads.head
    torch.nn.init.normal_(head.weight, std=0.02)
    torch.nn.init.normal_(head.bias, std=0.02)
    return m.eval()


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    m = build()
    mha = getattr(torch.backends, "mha", None)
    if mha is not None and hasattr(mha, "set_fastpath_enabled"):
        mha.set_fastpath_enabled(False)
    x = torch.randn(1, 3, 224, 224)
    for opset in (13, 17):
        path = os.path.join(OUT, f"vit_b_16_opset{opset}.onnx")
        kwargs = {}
        if "dynamo" in torch.onnx.export.__code__.co_varnames:
            kwargs["dynamo"] = False  # the TorchScript exporter: plain ops, dynamic_axes honoured
        # No torch.no_grad(): with grad enabled nn.MultiheadAttention skips its fused fast path
        # (aten::_native_multi_head_attention), which has no ONNX export.
        torch.onnx.export(
            m,
            (x,),
            path,
            opset_version=opset,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True,
            **kwargs,
        )
        print(f"wrote {path} ({os.path.getsize(path)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
