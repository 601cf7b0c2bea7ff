"""Real PyTorch exports for `sqz import`: torchvision's squeezenet1_0 and squeezenet1_1 (10
classes, random weights, 3x64x64 input, dynamic batch) written by torch.onnx.export at opsets 11
and 18, plus 40 random RGB PNGs to calibrate on. See README.md here for how to run it and what
it gave.

    pip install torch onnx numpy pillow && pip install --no-deps torchvision
    python3 tests/import/torchvision_export.py /tmp/tv
"""
import warnings, sys, os
warnings.filterwarnings("ignore")
import torch, torchvision
from PIL import Image
torch.manual_seed(0)
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name in ["squeezenet1_0", "squeezenet1_1"]:
    m = getattr(torchvision.models, name)(num_classes=10).eval()
    x = torch.rand(1, 3, 64, 64)
    for opset in [11, 18]:
        path = f"{out}/{name}_op{opset}.onnx"
        torch.onnx.export(m, x, path, opset_version=opset, dynamo=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}})
        print(path, os.path.getsize(path))
imgs = f"{out}/calib"
os.makedirs(imgs, exist_ok=True)
g = torch.Generator().manual_seed(1)
for i in range(40):
    a = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(a, "RGB").save(f"{imgs}/{i:03}.png")
