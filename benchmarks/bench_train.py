"""Training-step speed and memory: ours against PyTorch CPU, same architecture, same thread count.

  ResNet-ish: stem conv 3->32, basic blocks at 32, 64, 128, 256 channels (stride-2 downsampling),
              global average pool, linear to 17, sigmoid BCE, SGD with momentum; batch 32 at 3x64x64.
  U-Net:      our U-Net on that encoder; batch 8 at 3x128x128, 12 classes, cross-entropy.

Each (framework, model) runs in its own process, so that peak memory is its own (and idle threads of
one library cannot slow the other): we report the growth of the peak resident set over the resident
set just before the first step. The processes of the two frameworks alternate for --rounds rounds of
--steps timed steps each, so that a slow spell of a shared machine falls on both; the time is the
median over all the timed steps. Both frameworks get the same number of threads: --threads, else
tinygrad_cv's count (``tg.get_num_threads()``: TINYGRAD_CV_NUM_THREADS, else every usable core).

    python benchmarks/bench_train.py [--threads N] [--steps N] [--rounds R] [--json PATH] [--quick]
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

CONFIGS = {"resnet": dict(batch=32, size=64, classes=17), "unet": dict(batch=8, size=128, classes=12)}


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batch(cfg, kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((cfg["batch"], 3, cfg["size"], cfg["size"])).astype(np.float32)
    if kind == "resnet":
        y = (rng.random((cfg["batch"], cfg["classes"])) < 0.3).astype(np.float32)
    else:
        y = rng.integers(0, cfg["classes"], (cfg["batch"], cfg["size"], cfg["size"]))
    return x, y


def training_step(model, opt, loss_fn, x, y):
    """(step, parameter count): step() runs one training step and returns the loss. Both frameworks
    spell it the same way."""
    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step, sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------ ours
def ours_step(kind, cfg, threads):
    import tinygrad_cv as tg
    import tinygrad_cv.functional as F
    from tinygrad_cv import optim
    from tinygrad_cv.models import resnet_small, unet_resnet

    tg.manual_seed(0)
    tg.set_num_threads(threads)
    model = resnet_small(17, width=32) if kind == "resnet" else unet_resnet(12, width=32)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = batch(cfg, kind)
    x, y = tg.Tensor(x), tg.Tensor(y)
    loss_fn = F.binary_cross_entropy_with_logits if kind == "resnet" else F.cross_entropy
    return training_step(model, opt, loss_fn, x, y)


# ------------------------------------------------------------------------------------------ PyTorch
def torch_step(kind, cfg, threads):
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(threads)

    def conv_bn(cin, cout, k=3, stride=1, relu=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.convs = nn.Sequential(conv_bn(cin, cout, 3, stride), conv_bn(cout, cout, relu=False))
            self.shortcut = nn.Identity() if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride, False)

        def forward(self, x):
            return torch.relu(self.convs(x) + self.shortcut(x))

    widths = (32, 64, 128, 256)
    body = [conv_bn(3, 32)] + [Block(c_in, c, 1 if i == 0 else 2)
                               for i, (c_in, c) in enumerate(zip((32,) + widths[:-1], widths))]

    def double(cin, cout):
        return nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout))

    class Up(nn.Module):
        def __init__(self, cin, cskip, cout):
            super().__init__()
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, 2)
            self.skip_bn = nn.BatchNorm2d(cskip)
            self.convs = double(cin // 2 + cskip, cout)

        def forward(self, x, skip):
            return self.convs(torch.cat([torch.relu(self.up(x)), self.skip_bn(skip)], 1))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.ModuleList(body)
            self.middle = double(256, 256)
            self.decoder = nn.ModuleList([Up(256, 128, 128), Up(128, 64, 64), Up(64, 32, 32)])
            self.final = nn.Sequential(double(32 + 3, 32), nn.Conv2d(32, 12, 1))

        def forward(self, x):
            feats, h = [], x
            for stage in self.encoder:
                h = stage(h)
                feats.append(h)
            h = self.middle(h)
            for block, i in zip(self.decoder, (3, 2, 1)):
                h = block(h, feats[i])
            return self.final(torch.cat([h, x], 1))

    if kind == "resnet":
        model = nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 17))
        loss_fn = nn.functional.binary_cross_entropy_with_logits
    else:
        model, loss_fn = UNet(), nn.functional.cross_entropy
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = (torch.from_numpy(a) for a in batch(cfg, kind))
    return training_step(model, opt, loss_fn, x, y)


def worker(framework, kind, steps, threads):
    """Run in a child process: time ``steps`` training steps on ``threads`` threads after one warm-up,
    print JSON."""
    cfg = CONFIGS[kind]
    step, n_params = (ours_step if framework == "ours" else torch_step)(kind, cfg, threads)
    before = rss_mib()
    step()  # warm-up (allocations, caches)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"times_ms": [1000 * t for t in times], "peak_mib": peak_rss_mib() - before,
                      "params": n_params}))


def run_worker(framework, kind, steps, threads):
    out = subprocess.run([sys.executable, __file__, "--worker", framework, kind, "--steps", str(steps),
                          "--threads", str(threads)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(frameworks, kind, steps, rounds, threads):
    """{framework: {ms, best_ms, peak_mib, params}} over ``rounds`` alternating worker processes."""
    runs = {fw: [] for fw in frameworks}
    for _ in range(rounds):
        for fw in frameworks:
            runs[fw].append(run_worker(fw, kind, steps, threads))
    result = {}
    for fw, rs in runs.items():
        times = [t for r in rs for t in r["times_ms"]]
        result[fw] = {"ms": float(np.median(times)), "best_ms": min(times),
                      "peak_mib": max(r["peak_mib"] for r in rs), "params": rs[0]["params"]}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=5, help="processes per framework, alternating")
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true", help="one timed step each")
    parser.add_argument("--threads", type=int, help="threads of both frameworks (default: tg.get_num_threads())")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps, rounds = (1, 1) if args.quick else (args.steps, args.rounds)
    if args.threads is None:
        from tinygrad_cv import get_num_threads
        args.threads = get_num_threads()
    if args.worker:
        return worker(*args.worker, steps, args.threads)
    try:
        import torch  # noqa: F401
        frameworks = ("ours", "torch")
    except ImportError:
        frameworks = ("ours",)
        print("torch is not importable: showing our figures only (pip install torch==2.13.0)")
    results = {}
    print(f"training step, median of {rounds} x {steps} steps (each process warmed up by one); "
          f"{args.threads} thread(s)")
    print(f"{'model':<8}{'ours ms':>9}{'torch ms':>10}{'ratio':>7}{'ours MiB':>10}{'torch MiB':>11}{'ratio':>7}"
          f"{'params (ours/torch)':>22}")
    for kind in CONFIGS:
        r = measure(frameworks, kind, steps, rounds, args.threads)
        results[kind] = r
        o = r["ours"]
        line = f"{kind:<8}{o['ms']:>9.0f}"
        if "torch" in r:
            t = r["torch"]
            line += (f"{t['ms']:>10.0f}{o['ms'] / t['ms']:>7.2f}{o['peak_mib']:>10.0f}{t['peak_mib']:>11.0f}"
                     f"{o['peak_mib'] / t['peak_mib']:>7.2f}{o['params']:>12}/{t['params']}")
        else:
            line += f"{'':>17}{o['peak_mib']:>10.0f}"
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
