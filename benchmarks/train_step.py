"""Training-step throughput: fp32 against bf16 autocast, NCHW against channels_last.

    python benchmarks/train_step.py --variant bn --input-size 32 --batch-size 128

One full step (forward with the auxiliary heads, loss, backward, SGD) on random data,
after warm-up steps; the median of several timed steps. Ratios are against fp32 NCHW
measured in the same run. Used to choose `--amp auto` and `--channels-last` defaults.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from googlenet import build_model


def step_seconds(variant: str, size: int, batch: int, channels_last: bool, bf16: bool,
                 repeats: int, aux: bool = True) -> float:
    torch.manual_seed(0)
    model = build_model(variant, num_classes=10, aux_logits=aux).train()
    images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, aux = model.forward_train(images)
            loss = F.cross_entropy(logits, labels) + 0.3 * sum(F.cross_entropy(a, labels) for a in aux)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="bn", choices=["bn", "paper"])
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[128],
                        help="one or more batch sizes (a table each)")
    parser.add_argument("--no-aux", dest="aux", action="store_false",
                        help="without the auxiliary heads (as the fast recipe trains)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: "
          f"{torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()}")
    for batch in args.batch_size:
        print(f"# variant {args.variant}, {args.input_size}x{args.input_size}, batch {batch}, "
              f"median of {args.repeats} steps {'with' if args.aux else 'without'} the auxiliary heads\n")
        print("| layout | precision | images/s | vs fp32 NCHW |")
        print("| --- | --- | --- | --- |")
        baseline = None
        for channels_last in (False, True):
            for bf16 in (False, True):
                seconds = step_seconds(args.variant, args.input_size, batch, channels_last, bf16,
                                       args.repeats, args.aux)
                baseline = baseline or seconds
                print(f"| {'channels_last' if channels_last else 'NCHW'} | {'bf16' if bf16 else 'fp32'} "
                      f"| {batch / seconds:.0f} | {baseline / seconds:.2f}x |", flush=True)
        print()


if __name__ == "__main__":
    main()
