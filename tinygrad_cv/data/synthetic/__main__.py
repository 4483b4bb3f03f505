"""python -m tinygrad_cv.data.synthetic planet|camvid|shapes --out DIR --n N --size S --seed K"""
import argparse
import time
from functools import partial

from ...train.progress import progress_bar
from . import GENERATORS


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinygrad_cv.data.synthetic",
                                     description="Write a synthetic dataset in its real on-disk format.")
    parser.add_argument("kind", choices=sorted(GENERATORS))
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--n", type=int, default=1000, help="number of images")
    parser.add_argument("--size", type=int, default=128, help="image size in pixels (CamVid: the width)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1 or args.size < 16:
        parser.error(f"need --n >= 1 and --size >= 16, got --n {args.n} --size {args.size}")
    start = time.perf_counter()
    bar = partial(progress_bar, desc=args.kind, unit="img")            # live on a terminal only
    out = GENERATORS[args.kind](args.out, n=args.n, size=args.size, seed=args.seed, progress=bar)
    print(f"{args.kind}: {args.n} images of {args.size} px in {out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
