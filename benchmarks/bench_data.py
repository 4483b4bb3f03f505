"""Data pipeline throughput: images per second of the Planet-like pipeline at 128 px (JPEG decode,
random flips and dihedral turns, rotation, zoom and perspective warp in one resampling, collate,
normalisation into float32 NCHW Tensors), with num_workers 0 and 2, plus where the time goes.

    python benchmarks/bench_data.py [--json PATH] [--quick] [--workers 0 2]

The dataset is generated once into .cache/bench_data/ (git-ignored) and reused.
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import tinygrad_cv.data as D
from tinygrad_cv.data.synthetic import make_planet

SIZE, BATCH = 128, 64


def pipeline(path, num_workers):
    recipe = D.planet_recipe(path, valid_pct=0.1)
    tfms = D.aug_transforms(SIZE, flip_vert=True, max_lighting=0.0)
    return recipe.dataloaders(batch_size=BATCH, size=SIZE, train_tfms=tfms, num_workers=num_workers, seed=0,
                              stats=D.IMAGENET_STATS)


def images_per_second(dls, epochs):
    """Best images/s over ``epochs`` full passes of the training loader (Tensors out)."""
    best = 0.0
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for x, _ in dls.train:
            count += x.shape[0]
        best = max(best, count / (time.perf_counter() - start))
    return best


def stage_times(dls, n):
    """Mean milliseconds per image of each stage, run one after the other in this process."""
    loader = dls.loaders["train"]
    indices = loader.batch_indices(0)[0][:n]
    dataset = loader.dataset

    def timed(fn):
        start = time.perf_counter()
        result = fn()
        return result, (time.perf_counter() - start) * 1e3 / len(indices)
    raw, t_read = timed(lambda: [dataset[int(i)] for i in indices])
    warped, t_warp = timed(lambda: [loader.transform(s, D.loader.sample_rng(0, 0, int(i)))
                                    for s, i in zip(raw, indices)])
    _, t_batch = timed(lambda: D.batch_to_tensors(D.default_collate(warped), "cpu", dls.normalize))
    return {"read_ms": t_read, "transform_ms": t_warp, "collate_normalize_ms": t_batch}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this path")
    parser.add_argument("--quick", action="store_true", help="a small dataset and one epoch")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    n = 128 if args.quick else 1024
    path = make_planet(Path(".cache") / "bench_data" / f"planet{n}", n=n, size=SIZE, seed=0)
    rows = []
    print(f"Planet-like pipeline, {n} images of {SIZE} px, batch {BATCH}, {os.cpu_count()} CPUs")
    print(f"{'num_workers':>11} {'images/s':>9}")
    for workers in args.workers:
        rate = images_per_second(pipeline(path, workers), 1 if args.quick else 3)
        rows.append({"num_workers": workers, "images_per_s": rate})
        print(f"{workers:>11} {rate:>9.0f}")
    stages = stage_times(pipeline(path, 0), 32 if args.quick else 64)
    print("per image, one process: " + ", ".join(f"{k[:-3]} {v:.2f} ms" for k, v in stages.items()))
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"size": SIZE, "batch": BATCH, "images": n, "rates": rows, "stages": stages,
                       "numpy": np.__version__}, file, indent=1)


if __name__ == "__main__":
    main()
