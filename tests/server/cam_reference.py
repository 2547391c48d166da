"""Class activation maps (Zhou et al. 2016) computed in PyTorch, the reference
for POST /v1/models/{m}/explain (test_explain.py), independent of resnetd:

  * torch_cam(net, features_module, fc, x, k): a torch module; a forward hook
    on the module whose output feeds the global average pooling (torchvision
    ResNets: net.layer4) captures the feature maps, and fc.weight[k] weighs
    them;
  * onnx_cam(path, x, k): an ONNX file (the bundled model, whose training
    module is not kept) evaluated node by node with torch.nn.functional, the
    input of its GlobalAveragePool captured, the following Gemm's row k;
  * picture(pil_crop, cam, alpha): the PNG's expected pixels: the map
    upsampled with F.interpolate(bilinear, align_corners=False) to the crop
    size, coloured with jet (the classic tents at 0.25/0.5/0.75), blended over
    the image as torchvision's Resize + CenterCrop left it.

Maps are min-max scaled to 0..1, as the server scales them.

usage (a look by hand): cam_reference.py MODEL.onnx IMAGE [K] prints the
map of an ONNX model with 'gray' 28x28 preprocessing ((x/255-0.286)/0.353)."""

import sys

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F


def normalize(cam):
    cam = np.asarray(cam, dtype=np.float64)
    lo, hi = cam.min(), cam.max()
    return np.zeros_like(cam) if hi <= lo else (cam - lo) / (hi - lo)


def cam_from(features, weight, k):
    """features [C,h,w], weight [classes,C] -> the raw map [h,w] (float64)."""
    f = torch.as_tensor(features, dtype=torch.float64)
    w = torch.as_tensor(weight, dtype=torch.float64)[k]
    return torch.einsum("c,chw->hw", w, f).numpy()


def torch_cam(net, features_module, fc, x, k=None):
    """(logits [classes], k, normalized map [h,w]) for one image x [1,C,H,W];
    k None: the top-1 class."""
    got = {}
    h = features_module.register_forward_hook(lambda m, i, o: got.__setitem__("f", o.detach()))
    try:
        with torch.no_grad():
            logits = net(x)[0].double().numpy()
    finally:
        h.remove()
    k = int(np.argmax(logits)) if k is None else k
    return logits, k, normalize(cam_from(got["f"][0], fc.weight.detach(), k))


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def onnx_cam(path, x, k=None):
    """(logits, k, normalized map) of an ONNX classifier that ends in
    GlobalAveragePool -> Flatten -> Gemm, evaluated in torch."""
    m = onnx.load(path)
    env = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy())
           for t in m.graph.initializer}
    env[m.graph.input[0].name] = x
    gap_in, gemm = None, None
    for n in m.graph.node:
        i = [env[s] if s else None for s in n.input]
        op = n.op_type
        if op == "Conv":
            pads = _attr(n, "pads", [0, 0, 0, 0])
            xp = F.pad(i[0], (pads[1], pads[3], pads[0], pads[2]))
            y = F.conv2d(xp, i[1], i[2] if len(i) > 2 else None, stride=_attr(n, "strides", 1),
                         dilation=_attr(n, "dilations", 1), groups=_attr(n, "group", 1))
        elif op == "Relu":
            y = F.relu(i[0])
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "MaxPool":
            pads = _attr(n, "pads", [0, 0, 0, 0])
            xp = F.pad(i[0], (pads[1], pads[3], pads[0], pads[2]), value=float("-inf"))
            y = F.max_pool2d(xp, _attr(n, "kernel_shape"), _attr(n, "strides"))
        elif op == "GlobalAveragePool":
            gap_in = i[0]
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = torch.flatten(i[0], _attr(n, "axis", 1))
        elif op == "Gemm":
            b = i[1] if _attr(n, "transB", 0) else i[1].t()
            gemm = b
            y = i[0] @ b.t() + (i[2] if len(i) > 2 else 0)
        else:
            raise ValueError(f"onnx_cam: op {op} is not handled")
        env[n.output[0]] = y
    logits = env[m.graph.output[0].name][0].double().numpy()
    k = int(np.argmax(logits)) if k is None else k
    return logits, k, normalize(cam_from(gap_in[0], gemm, k))


def jet(v):
    v = np.clip(v, 0, 1)
    return np.stack([np.clip(1.5 - np.abs(4 * v - c), 0, 1) for c in (3, 2, 1)], -1)


def picture(crop_rgb, cam, alpha=0.5):
    """Expected PNG pixels (uint8 [H,W,3]): crop_rgb is the image after
    Resize + CenterCrop (uint8 [H,W,3]; gray repeated), cam the normalized map."""
    H, W = crop_rgb.shape[:2]
    up = F.interpolate(torch.as_tensor(cam, dtype=torch.float32)[None, None], size=(H, W),
                       mode="bilinear", align_corners=False)[0, 0].numpy()
    colour = np.rint(jet(up) * 255)
    return np.rint((1 - alpha) * crop_rgb.astype(np.float64) + alpha * colour).astype(np.uint8)


def cosine(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


if __name__ == "__main__":
    from PIL import Image
    im = np.asarray(Image.open(sys.argv[2]).convert("L"), dtype=np.float32) / 255
    x = torch.from_numpy((im - 0.286041) / 0.353024)[None, None]
    logits, k, cam = onnx_cam(sys.argv[1], x, int(sys.argv[3]) if len(sys.argv) > 3 else None)
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    print("class", k, "logits", logits)
    print(cam)
