"""The fast depthwise convolution computes F.conv2d(..., groups=C): values, gradients, training."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from npf import depthwise
from npf.acceleration import CudaGraphModel
from npf.depthwise import current_backend, depthwise_conv2d, use_backend
from npf.loss import gaussian_nll
from npf.model import GridConvCNP
from npf.tasks import ContextSampler

REPO = Path(__file__).resolve().parents[1]
# (batch, channels, height, width, kernel): odd and even sizes, planes smaller than
# the kernel, non-square planes, and the model's 9 and 11.
SHAPES = [(2, 3, 12, 12, 5), (1, 4, 7, 10, 9), (3, 2, 5, 6, 11), (2, 5, 16, 9, 3)]
# Channels in blocks of 16: the CPU runs the C++ kernels (npf/csrc) at any vector width.
KERNEL_SHAPES = [(2, 16, 12, 12, 5), (1, 32, 7, 10, 9), (3, 16, 5, 6, 11), (2, 16, 9, 13, 3)]
# The forward kernel: odd planes (a partial tile of 8 columns), single pixels, the model's
# 128 channels, bands of rows (batch 1) and whole images.
FORWARD_SHAPES = [(1, 16, 7, 13, 3), (3, 128, 7, 13, 9), (1, 128, 1, 1, 9), (3, 16, 1, 1, 11)]
FORWARD_SHAPES += [(3, 16, 13, 7, 11), (1, 128, 20, 17, 9)]
# On a GPU (the Triton kernels) also the model's own sizes, several tiles per plane.
CUDA_SHAPES = [(32, 128, 32, 32, 9), (4, 128, 64, 64, 9), (8, 3, 64, 64, 11), (2, 6, 45, 71, 9)]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CASES = [("cpu", shape) for shape in SHAPES + KERNEL_SHAPES] + [
    pytest.param("cuda", shape, marks=needs_cuda) for shape in CUDA_SHAPES
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second thread only adds barrier waits (costly on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def kernel():
    """The compiled C++ kernels (``npf/csrc/depthwise_cpu.cpp``)."""
    built = depthwise._cpu_kernel()
    assert built is not None, "the C++ kernel did not build (see the warning)"
    return built


#: the dtypes and memory layouts the C++ kernels take
KERNEL_DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
KERNEL_LAYOUTS = pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def random_case(device: str, shape: tuple[int, ...], dtype: torch.dtype, seed: int):
    """Input, filter (fp32) and output gradient, drawn on the CPU for any device."""
    batch, channels, height, width, k = shape
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=generator)
    weight = torch.randn(channels, 1, k, k, generator=generator)
    grad_out = torch.randn(batch, channels, height, width, generator=generator)
    return x.to(device, dtype), weight.to(device), grad_out.to(device, dtype)


def reference(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor):
    """Output and gradients of plain F.conv2d in float64."""
    x = x.detach().double().requires_grad_()
    weight = weight.detach().double().requires_grad_()
    out = F.conv2d(x, weight, padding=weight.shape[-1] // 2, groups=x.shape[1])
    out.backward(grad_out.double())
    return out.detach(), x.grad, weight.grad


def fast(x: torch.Tensor, weight: torch.Tensor, grad_out: torch.Tensor):
    x = x.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    out = depthwise_conv2d(x, weight)
    out.backward(grad_out)
    return out.detach(), x.grad, weight.grad


@pytest.mark.parametrize(("device", "shape"), CASES)
def test_fast_path_matches_conv2d_in_fp32(device, shape):
    x, weight, grad_out = random_case(device, shape, torch.float32, sum(shape))
    for got, want in zip(fast(x, weight, grad_out), reference(x, weight, grad_out), strict=True):
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert relative_error(got, want) < 1e-5


@pytest.mark.parametrize(("device", "shape"), CASES[:2] + CASES[len(SHAPES) :])
def test_fast_path_in_bf16_is_within_one_percent(device, shape):
    x, weight, grad_out = random_case(device, shape, torch.bfloat16, sum(shape) + 1)
    out, grad_x, grad_w = fast(x, weight, grad_out)
    assert out.dtype == grad_x.dtype == torch.bfloat16 and grad_w.dtype == torch.float32
    for got, want in zip((out, grad_x, grad_w), reference(x, weight, grad_out), strict=True):
        assert relative_error(got, want) < 1e-2


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@KERNEL_DTYPES
@KERNEL_LAYOUTS
def test_cpu_weight_gradient_kernel_matches_float64(kernel, shape, dtype, layout):
    x, weight, grad_out = random_case("cpu", shape, dtype, sum(shape) + 2)
    x, grad_out = x.contiguous(memory_format=layout), grad_out.contiguous(memory_format=layout)
    got = kernel.depthwise_weight_grad(x, grad_out, shape[-1])
    want = reference(x, weight, grad_out)[2]
    assert got.dtype == torch.float32 and got.shape == want.shape
    # fp32 sums: only the rounding of the inputs to bf16 remains
    assert relative_error(got, want) < 1e-6
    per_image = depthwise._per_image_weight_grad(x, grad_out, shape[-1])
    assert relative_error(per_image, want) < (1e-5 if dtype == torch.float32 else 1e-2)


def test_cpu_kernels_take_channels_in_blocks_of_one_vector(kernel):
    """One vector of channels (CHANNEL_BLOCK: 8 with AVX2), three, and nine (the weight
    gradient: chunks of 64 channels and a partial one), the same sums on one thread or two."""
    block = kernel.CHANNEL_BLOCK
    assert block in (4, 8, 16)
    for channels in (block, 3 * block, 9 * block):
        x, weight, grad_out = random_case("cpu", (2, channels, 6, 11, 9), torch.float32, channels)
        out, _, grad_w = reference(x, weight, grad_out)
        assert relative_error(kernel.depthwise_forward(x, weight), out) < 1e-6
        got = kernel.depthwise_weight_grad(x, grad_out, 9)
        assert relative_error(got, grad_w) < 1e-6
        torch.set_num_threads(2)
        assert torch.equal(kernel.depthwise_weight_grad(x, grad_out, 9), got)
        torch.set_num_threads(1)
    with pytest.raises(RuntimeError, match=f"multiple of {block}"):
        kernel.depthwise_weight_grad(x[:, 1:], grad_out[:, 1:], 9)


@pytest.mark.parametrize("shape", FORWARD_SHAPES)
@KERNEL_DTYPES
@KERNEL_LAYOUTS
def test_cpu_forward_kernel_matches_float64(kernel, shape, dtype, layout):
    x, weight, _ = random_case("cpu", shape, dtype, sum(shape) + 3)
    x, weight = x.contiguous(memory_format=layout), weight.to(dtype)
    got = kernel.depthwise_forward(x, weight)
    want = F.conv2d(x.double(), weight.double(), padding=shape[-1] // 2, groups=shape[1])
    assert got.dtype == dtype and got.shape == want.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    if dtype == torch.float32:
        assert relative_error(got, want) < 1e-6
    else:
        # fp32 sums rounded once to bf16: within half a bf16 unit (at most 2^-8 relative),
        # rounded to nearest even as torch rounds the same sums of the fp32 kernel
        assert ((got.double() - want).abs() <= want.abs() * 2**-8 + 1e-4).all()
        assert torch.equal(got, kernel.depthwise_forward(x.float(), weight.float()).to(dtype))


def test_cpu_forward_kernel_keeps_nan_in_bf16(kernel):
    x = torch.zeros(1, 16, 7, 7, dtype=torch.bfloat16)
    x[0, :, 3, 3] = float("nan")
    out = kernel.depthwise_forward(x, torch.ones(16, 1, 3, 3, dtype=torch.bfloat16))
    assert out[0, :, 2:5, 2:5].isnan().all() and out.isnan().sum() == 16 * 3 * 3


def test_backends_differ_only_in_how_gradients_are_computed():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    weight = torch.randn(3, 1, 5, 5, requires_grad=True)
    assert current_backend() == "fast"
    assert "npf" in type(depthwise_conv2d(x, weight).grad_fn).__name__.lower()
    with use_backend("reference"):
        assert current_backend() == "reference"
        assert type(depthwise_conv2d(x, weight).grad_fn).__name__.startswith("Convolution")
    assert current_backend() == "fast"


def test_bad_backend_and_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="fast, reference"):
        with use_backend("cudnn"):
            pass
    assert current_backend() == "fast"
    with pytest.raises(ValueError, match="odd k"):
        depthwise_conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match="does not fit"):
        depthwise_conv2d(torch.zeros(1, 3, 8, 8), torch.zeros(2, 1, 5, 5))


def test_torch_compile_sees_one_operator_without_graph_breaks():
    def loss(x, weight):
        return depthwise_conv2d(x, weight).square().sum()

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    weight = torch.randn(3, 1, 5, 5, requires_grad=True)
    got = torch.autograd.grad(compiled(x, weight), (x, weight))
    want = torch.autograd.grad(loss(x, weight), (x, weight))
    for g, w in zip(got, want, strict=True):
        assert relative_error(g, w) < 1e-5


def train_losses(
    backend: str,
    precision: str = "fp32",
    device: str = "cpu",
    speed_up: str | None = None,
    steps: int = 6,
) -> list[float]:
    """Losses of a short SGD run on fixed random batches.

    On CPU a small GridConvCNP (16 channels: the C++ kernels) on 12 x 12
    fields; on CUDA the report's model on
    batches of 8 fields of 32 x 32. ``speed_up``: None, "graph" (CudaGraphModel)
    or "compile" (``model.compile()``).
    """
    torch.manual_seed(0)
    if device == "cpu":
        model = GridConvCNP(y_channels=1, hidden_channels=16, n_blocks=2, decoder_layers=2)
        batch, size = 4, 12
    else:
        model = GridConvCNP(y_channels=1).to(device)
        batch, size = 8, 32
    forward = CudaGraphModel(model) if speed_up == "graph" else model
    if speed_up == "compile":
        model.compile()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    y = torch.randn(batch, 1, size, size, generator=generator).cumsum(-1).cumsum(-2) / size**0.5
    y = y.to(device)
    valid = torch.ones(batch, 1, size, size, dtype=torch.bool, device=device)
    sampler = ContextSampler()
    losses = []
    with use_backend(backend):
        for _ in range(steps):
            context = sampler(valid.cpu(), generator).to(device)
            with torch.autocast(
                device, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False
            ):
                mean, std = forward(y, context)
            loss, _ = gaussian_nll(mean.float(), std.float(), y, valid)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def test_short_training_run_follows_the_reference_loss_curve():
    want = torch.tensor(train_losses("reference"))
    assert (want[-1] < want[0]).item()  # it learns, so the curves compare something
    fast_fp32 = torch.tensor(train_losses("fast"))
    assert torch.allclose(fast_fp32, want, rtol=1e-4)
    fast_bf16 = torch.tensor(train_losses("fast", precision="bf16"))
    assert torch.allclose(fast_bf16, want, rtol=1e-2)


@needs_cuda
@pytest.mark.parametrize(
    ("precision", "speed_up", "rtol"),
    # cuDNN may use TF32 in the fp32 reference, hence 1e-3 rather than 1e-4
    [("fp32", None, 1e-3), ("bf16", None, 1e-2), ("fp32", "graph", 1e-3), ("bf16", "graph", 1e-2)]
    + [("fp32", "compile", 1e-3), ("bf16", "compile", 1e-2)],
)
def test_short_cuda_training_run_follows_the_reference_loss_curve(precision, speed_up, rtol):
    want = torch.tensor(train_losses("reference", device="cuda"))
    assert (want[-1] < want[0]).item()
    got = torch.tensor(train_losses("fast", precision, "cuda", speed_up))
    assert torch.allclose(got, want, rtol=rtol), (got, want)


# The Triton kernels run on CPU through Triton's interpreter in a subprocess (the
# interpreter is chosen when triton is first imported). With TRITON_INTERPRET=1,
# npf.depthwise sends CPU tensors to the Triton kernels too, so the script checks the
# kernels alone and the whole model's gradients through the custom operator.
INTERPRETED_CHECK = textwrap.dedent(
    """
    import json, sys, torch, torch.nn.functional as F
    from npf import depthwise, depthwise_triton
    from npf.model import GridConvCNP
    assert depthwise_triton.INTERPRETED and depthwise._use_triton(torch.zeros(1))

    def rel(a, b):
        return float((a.double() - b.double()).norm() / b.double().norm())

    errors = {}
    for batch, channels, height, width, k in json.loads(sys.argv[1]):
        for dtype in (torch.float32, torch.bfloat16):
            g = torch.Generator().manual_seed(height * width + k)
            x = torch.randn(batch, channels, height, width, generator=g).to(dtype)
            weight = torch.randn(channels, 1, k, k, generator=g)
            grad_out = torch.randn(batch, channels, height, width, generator=g).to(dtype)
            xr = x.double().requires_grad_()
            wr = weight.double().requires_grad_()
            out = F.conv2d(xr, wr, padding=k // 2, groups=channels)
            out.backward(grad_out.double())
            got = (
                depthwise_triton.forward(x, weight),
                depthwise_triton.forward(grad_out, weight.flip(-1, -2)),
                depthwise_triton.weight_grad(x, grad_out, k),
            )
            key = f"{batch}x{channels}x{height}x{width} k{k} {dtype}"
            errors[key] = [rel(a, b) for a, b in zip(got, (out, xr.grad, wr.grad))]
            errors[key].append(got[0].dtype == dtype and got[2].dtype == torch.float32)

    torch.manual_seed(0)
    model = GridConvCNP(2, hidden_channels=2, n_blocks=1, kernel_size=5, setconv_kernel_size=7)
    y = torch.randn(2, 2, 8, 8)
    context = torch.rand(2, 1, 8, 8) < 0.3
    grads = {}
    for backend in depthwise.BACKENDS:
        model.zero_grad()
        with depthwise.use_backend(backend):
            mean, std = model(y, context)
        (mean.square().sum() + std.sum()).backward()
        grads[backend] = torch.cat([p.grad.flatten() for p in model.parameters()])
    # One norm over all gradients: a bias feeding batch norm has a gradient of ~0.
    errors["model"] = rel(grads["fast"], grads["reference"])
    print(json.dumps(errors))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_triton_kernels_in_the_interpreter_match_conv2d():
    # Multi-tile planes (the interpreter's first config tiles 16 x 32), kernels 3/9/11.
    shapes = [[1, 2, 18, 34, 9], [1, 2, 7, 5, 11], [2, 1, 17, 33, 3]]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", INTERPRETED_CHECK, str(shapes).replace(" ", "")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    errors = json.loads(result.stdout.strip().splitlines()[-1])
    assert errors.pop("model") < 1e-5
    assert len(errors) == 2 * len(shapes)
    for key, (out, grad_x, grad_w, dtypes_ok) in errors.items():
        tolerance = 1e-2 if "bfloat16" in key else 1e-5
        assert max(out, grad_x, grad_w) < tolerance, key
        assert dtypes_ok, key
