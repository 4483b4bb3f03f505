"""CPU against GPU for every op that has a CUDA kernel, and what a GPU should reach: each kernel's roofline.

Ops: forward + backward through the public API on device "cpu" and, when CuPy sees a GPU, on "cuda",
with the ratio; the ResNet and U-Net training steps likewise (GPU machines only).

Roofline: for each kernel at the benchmark shapes, the FLOPs it performs and the bytes it must move
at the least (every input read once, every output written once), and the time an H100 SXM cannot
beat: max(FLOPs / peak, bytes / bandwidth), with ~3.35 TB/s of HBM3, ~67 TFLOP/s in fp32 on the CUDA
cores (our kernels compute in fp32, fp16 ones too) and ~990 TFLOP/s dense fp16 on the tensor cores
(cuBLAS GEMMs in fp16). Without a GPU this is the GPU column: a bound, not a measurement.

    python benchmarks/bench_devices.py [--json PATH] [--quick]
"""
import argparse
import json
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

import tinygrad_cv as tg
import tinygrad_cv.functional as F
from tinygrad_cv import backend, optim
from tinygrad_cv.backend import launch
from tinygrad_cv.ops.boxes import padded_nms

H100 = {"name": "H100 SXM", "bandwidth": 3.35e12, "fp32_flops": 67e12, "fp16_tensor_flops": 990e12}


def shapes(quick):
    """The benchmark shapes: a ResNet stage at batch 8, an FPN level with 512 boxes, ..."""
    d = 4 if quick else 1
    return {
        "conv": dict(x=(8 // min(d, 4), 64 // d, 56, 56), out=64 // d, k=3),
        "pool": dict(x=(8 // min(d, 4), 64 // d, 112, 112)),
        "norm": dict(x=(8 // min(d, 4), 64 // d, 56, 56)),
        "bce": dict(x=(512 // d, 1000)),
        "roi": dict(x=(2, 256 // d, 50, 68), boxes=512 // d, out=7, ratio=2, scale=1 / 16),
        "nonfinite": dict(n=11_000_000 // d),
        "nms": dict(rows=2, m=1200 // d),   # an FPN image's proposals before NMS: 4 levels of 300
    }


# ============================================================================================ timing
def synchronize(device):
    if device == "cuda":
        import cupy
        cupy.cuda.Device().synchronize()


def best_ms(fn, device, repeats=3):
    """Best wall time of ``fn`` in milliseconds (after one warm-up call), waiting for the GPU."""
    fn()
    synchronize(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def forward_backward(fn, arrays, device, dtype):
    """A callable running fn, then backward, on tensors from ``arrays`` {name: (array, requires_grad)}."""
    tensors = {name: tg.Tensor(a, dtype=dtype if a.dtype.kind == "f" else None, device=device,
                               requires_grad=grad) for name, (a, grad) in arrays.items()}
    out = fn(**tensors)
    upstream = None if out.numel() == 1 else np.random.default_rng(1).standard_normal(out.shape).astype(dtype)

    def run():
        for t in tensors.values():
            t.grad = None
        fn(**tensors).backward(upstream)
    return run


def op_cases(s):
    """(name, shape text, fn(**tensors), {name: (array, requires_grad)}) for every op with kernels."""
    rng = np.random.default_rng(0)
    conv, pool, norm, bce, roi = s["conv"], s["pool"], s["norm"], s["bce"], s["roi"]
    c = conv["x"][1]
    n, ch, h, w = roi["x"]
    corners = rng.uniform(0, 1, (roi["boxes"], 4)) * [w, h, w, h] / roi["scale"]
    boxes = np.concatenate([rng.integers(0, n, (roi["boxes"], 1)), np.minimum(corners[:, :2], corners[:, 2:]),
                            np.maximum(corners[:, :2], corners[:, 2:])], axis=1)
    return [
        ("conv2d 3x3 (im2col + GEMM + col2im)", f"{conv['x']} -> {conv['out']} ch",
         lambda x, w, b: F.conv2d(x, w, b, padding=1),
         {"x": (rng.standard_normal(conv["x"]), True),
          "w": (rng.standard_normal((conv["out"], c, 3, 3)) * 0.05, True),
          "b": (rng.standard_normal(conv["out"]), True)}),
        ("max_pool2d 3x3/2", f"{pool['x']}", lambda x: F.max_pool2d(x, 3, 2, 1),
         {"x": (rng.standard_normal(pool["x"]), True)}),
        ("batch_norm (training)", f"{norm['x']}",
         lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
         {"x": (rng.standard_normal(norm["x"]), True), "w": (np.ones(norm["x"][1]), True),
          "b": (np.zeros(norm["x"][1]), True)}),
        ("relu(x + bias)", f"{norm['x']}", lambda x, b: F.relu(x + b.reshape(1, -1, 1, 1)),
         {"x": (rng.standard_normal(norm["x"]), True), "b": (rng.standard_normal(norm["x"][1]), True)}),
        ("bce_with_logits (mean)", f"{bce['x']}", lambda x, t: F.binary_cross_entropy_with_logits(x, t),
         {"x": (rng.standard_normal(bce["x"]), True),
          "t": ((rng.random(bce["x"]) > 0.5).astype(np.float64), False)}),
        ("roi_align 7x7, ratio 2", f"{roi['x']}, {roi['boxes']} boxes",
         lambda x, boxes: F.roi_align(x, boxes, roi["out"], roi["scale"], roi["ratio"], aligned=True),
         {"x": (rng.standard_normal(roi["x"]), True), "boxes": (boxes, False)}),
    ]


def nonfinite_ms(s, device, dtype):
    """The loss-scaling overflow check over one parameter-sized array: NumPy's isfinite on 'cpu', the
    kernel on 'cuda'."""
    values = np.random.default_rng(2).standard_normal(s["nonfinite"]["n"])
    a = tg.Tensor(values, dtype=dtype, device=device).data
    if device == "cpu":
        return best_ms(lambda: not np.isfinite(a).all(), device)
    return best_ms(lambda: launch.has_nonfinite([a]), device)


def nms_ms(s, device, dtype):
    """Proposal NMS (``padded_nms``, 100 kept per row) over random boxes of one level: per row on the
    'cpu', one kernel launch on 'cuda'."""
    rng = np.random.default_rng(3)
    rows, m = s["nms"]["rows"], s["nms"]["m"]
    corners = rng.uniform(0, 100, (rows, m, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (rows, m, 2))], axis=2)
    args = [backend.move(a, device) for a in (boxes.astype(dtype), rng.standard_normal((rows, m)),
                                              np.ones((rows, m), bool), np.zeros((rows, m), np.int32))]
    return best_ms(lambda: padded_nms(*args, 0.7, 100), device)


def op_table(s, devices, dtype):
    rows = []
    for name, shape, fn, arrays in op_cases(s):
        times = {d: best_ms(forward_backward(fn, arrays, d, dtype), d) for d in devices}
        rows.append(_op_row(name, shape, dtype, times))
    times = {d: nonfinite_ms(s, d, dtype) for d in devices}
    rows.append(_op_row("non-finite check (forward only)", f"({s['nonfinite']['n']},)", dtype, times))
    times = {d: nms_ms(s, d, dtype) for d in devices}
    rows.append(_op_row("padded NMS, IoU 0.7 (forward only)", f"{s['nms']['rows']} x {s['nms']['m']} boxes",
                        dtype, times))
    return rows


def _op_row(name, shape, dtype, times):
    row = {"op": name, "shape": shape, "dtype": np.dtype(dtype).name, "cpu_ms": times["cpu"],
           "cuda_ms": times.get("cuda")}
    row["speedup"] = row["cpu_ms"] / row["cuda_ms"] if row["cuda_ms"] else None
    return row


def model_table(devices, quick):
    """Training steps of the models (SGD with momentum) on each device."""
    from tinygrad_cv.models import resnet_small, unet_resnet
    rows = []
    batch, size = (4, 32) if quick else (32, 64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, size, size))
    configs = [("resnet_small (BCE)", lambda: resnet_small(17, width=32),
                (rng.random((batch, 17)) < 0.3) * 1.0, F.binary_cross_entropy_with_logits),
               ("unet_resnet (cross-entropy)", lambda: unet_resnet(12, width=32),
                rng.integers(0, 12, (batch, size, size)), F.cross_entropy)]
    for name, make, y, loss_fn in configs:
        times = {}
        for device in devices:
            tg.manual_seed(0)
            model = make().to(device=device)
            opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            xt = tg.Tensor(x, dtype=np.float32, device=device)
            yt = tg.Tensor(y, dtype=np.float32 if y.dtype.kind == "f" else None, device=device)

            def step():
                loss = loss_fn(model(xt), yt)
                opt.zero_grad()
                loss.backward()
                opt.step()
            times[device] = best_ms(step, device)
        rows.append(_op_row(f"{name} training step", f"batch {batch} at 3x{size}x{size}", np.float32, times))
    return rows


# ============================================================================================ roofline
@dataclass
class Kernel:
    kernel: str
    shape: str
    dtype: str
    flops: float
    bytes: float
    peak: str = "fp32_flops"  # which H100 peak bounds the arithmetic
    note: str = ""

    def roofline(self):
        compute, memory = self.flops / H100[self.peak], self.bytes / H100["bandwidth"]
        return dict(asdict(self), gflop=self.flops / 1e9, mbytes=self.bytes / 1e6,
                    intensity=self.flops / self.bytes, h100_us=max(compute, memory) * 1e6,
                    bound="compute" if compute > memory else "memory")


def kernels(s, dtype):
    """FLOPs and minimal bytes of every kernel at the benchmark shapes."""
    e = np.dtype(dtype).itemsize
    name = np.dtype(dtype).name
    conv, pool, norm, bce, roi = s["conv"], s["pool"], s["norm"], s["bce"], s["roi"]
    n, c, h, w = conv["x"]
    o, k2 = conv["out"], conv["k"] ** 2
    x, cols, out = n * c * h * w, n * c * k2 * h * w, n * o * h * w  # 3x3, padding 1: same size
    pn, pc, ph, pw = pool["x"]
    px, py = pn * pc * ph * pw, pn * pc * (ph // 2) * (pw // 2)
    m = math.prod(norm["x"])
    b = math.prod(bce["x"])
    rn, rc, rh, rw = roi["x"]
    roi_out, samples = roi["boxes"] * rc * roi["out"] ** 2, roi["ratio"] ** 2
    acc = 8 if dtype == np.float64 else 4
    nf = s["nonfinite"]["n"]
    rows, boxes = s["nms"]["rows"], s["nms"]["m"]
    gemm_peak = "fp16_tensor_flops" if dtype == np.float16 else "fp32_flops"
    return [
        Kernel("im2col", f"{conv['x']}, 3x3", name, 0, e * (x + cols)),
        Kernel("conv GEMM (cuBLAS)", f"{o}x{c * k2} @ {c * k2}x{h * w}, batch {n}", name, 2 * o * cols,
               e * (o * c * k2 + cols + out), peak=gemm_peak),
        Kernel("col2im", f"{conv['x']}, 3x3", name, cols, e * (cols + x)),
        Kernel("max_pool2d_forward", f"{pool['x']}, 3x3/2", name, 9 * py, e * (px + py) + 4 * py),
        Kernel("max_pool2d_backward", f"{pool['x']}, 3x3/2", name, 9 * px, e * (py + px) + 4 * py),
        Kernel("bias_relu_forward", f"{norm['x']}", name, 2 * m, e * (2 * m + norm["x"][1])),
        Kernel("bias_relu_backward", f"{norm['x']}", name, m, e * 3 * m),
        Kernel("channel_sums (batch norm)", f"{norm['x']}", name, 3 * m, e * m + 2 * acc * norm["x"][1]),
        Kernel("bce_with_logits_forward", f"{bce['x']}", name, 8 * b, e * 3 * b, note="exp, log1p as 1 FLOP"),
        Kernel("bce_with_logits_backward", f"{bce['x']}", name, 6 * b, e * 3 * b),
        Kernel("roi_align_forward", f"{roi['x']}, {roi['boxes']} boxes 7x7", name, 10 * samples * roi_out,
               e * (rn * rc * rh * rw + roi_out) + acc * 5 * roi["boxes"]),
        Kernel("roi_align_backward", f"{roi['x']}, {roi['boxes']} boxes 7x7", name, 10 * samples * roi_out,
               e * roi_out + acc * rn * rc * rh * rw, note=f"{4 * samples * roi_out / 1e6:.0f}M atomic adds"),
        Kernel("nonfinite_check", f"({nf},)", name, nf, e * nf),
        Kernel("nms_rows", f"{rows} x {boxes} boxes", name, rows * 12 * boxes * (boxes - 1) / 2,
               rows * boxes * (4 * e + 8),
               note=f"at most, every box kept; {boxes} barrier-separated steps, so latency bounds it"),
    ]


# ============================================================================================ report
def print_ops(rows, gpu):
    print(f"\n{'op':38s} {'shape':34s} {'dtype':8s} {'cpu ms':>9s} {'cuda ms':>9s} {'cpu/cuda':>9s}")
    for r in rows:
        cuda = f"{r['cuda_ms']:9.2f}" if r["cuda_ms"] else f"{'-':>9s}"
        ratio = f"{r['speedup']:9.1f}" if r["speedup"] else f"{'-':>9s}"
        print(f"{r['op']:38s} {r['shape']:34s} {r['dtype']:8s} {r['cpu_ms']:9.2f} {cuda} {ratio}")
    if not gpu:
        print("(no GPU: the cuda column is empty; see the roofline below for what an H100 should reach)")


def print_roofline(rows):
    print(f"\nRoofline on an {H100['name']}: {H100['bandwidth'] / 1e12:.2f} TB/s, "
          f"{H100['fp32_flops'] / 1e12:.0f} TFLOP/s fp32, "
          f"{H100['fp16_tensor_flops'] / 1e12:.0f} TFLOP/s fp16 tensor cores")
    print(f"{'kernel':28s} {'dtype':8s} {'GFLOP':>8s} {'MB':>9s} {'FLOP/B':>7s} {'H100 us':>9s} {'bound':8s} "
          f"shape")
    for r in rows:
        print(f"{r['kernel']:28s} {r['dtype']:8s} {r['gflop']:8.3f} {r['mbytes']:9.2f} {r['intensity']:7.2f} "
              f"{r['h100_us']:9.1f} {r['bound']:8s} {r['shape']}" + (f"  ({r['note']})" if r["note"] else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="also write the results to this path")
    parser.add_argument("--quick", action="store_true", help="small shapes, for tests")
    args = parser.parse_args()
    gpu = tg.cuda_available()
    devices = ["cpu", "cuda"] if gpu else ["cpu"]
    if gpu:
        import cupy
        gpu_name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        print(f"GPU: {gpu_name}")
    else:
        gpu_name = None
        print("No GPU here (cupy.is_available() is False): the ops run on the CPU only, and the GPU side is "
              "the roofline bound of each kernel on an H100.")
    s = shapes(args.quick)
    ops = op_table(s, devices, np.float32)
    models = model_table(devices, args.quick) if gpu else []
    print_ops(ops + models, gpu)
    if not gpu:
        print("ResNet / U-Net training steps: compared on GPU machines only.")
    roofline = [k.roofline() for dtype in (np.float32, np.float16) for k in kernels(s, dtype)]
    print_roofline(roofline)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"gpu": gpu_name, "reference_gpu": H100, "ops": ops, "models": models,
                       "roofline": roofline}, f, indent=1)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
