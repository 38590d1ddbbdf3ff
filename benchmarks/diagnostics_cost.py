"""Seconds per selection diagnostic (``SelectionDiagnosticsHook``).

Times ``ausam_tasks.diagnostics.probe_diagnostics`` (2 P single-sample
forward/backward passes plus the subset sums) on ResNet-20 (width 16, 10
classes) in eval mode, synthetic inputs, an ADLP score per probe sample.
Plain PyTorch: runs without mmengine.

    taskset -c 0 python benchmarks/diagnostics_cost.py --threads 1
    python benchmarks/diagnostics_cost.py --device cuda
"""

import argparse
import statistics
import time

import common  # noqa: F401  (the repository on sys.path)
import torch
import torch.nn.functional as F
from timing import device_name  # noqa: E402

from ausam_tasks.diagnostics import probe_diagnostics  # noqa: E402
from tasks.classification.models.cifar_resnet import cifar_resnet  # noqa


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--num-probe', type=int, default=256)
    ap.add_argument('--num-draws', type=int, default=8)
    ap.add_argument('--size', type=int, default=16, help='input side')
    ap.add_argument('--width', type=int, default=16)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    net = cifar_resnet(20, args.width).to(dev).eval()
    p, s = args.num_probe, args.size
    x = torch.randn(p, 3, s, s, device=dev)
    y = torch.randint(0, 10, (p,), device=dev)
    scores = torch.rand(p, dtype=torch.float64)

    def closure(pos):
        xb, yb = (x, y) if pos is None else (x[pos], y[pos])
        return {'loss': F.cross_entropy(net(xb), yb, reduction='none')}

    params = list(net.parameters())
    times = []
    for _ in range(args.repeats):
        if dev.type == 'cuda':
            torch.cuda.synchronize()
        t = time.perf_counter()
        res = probe_diagnostics(
            closure,
            params,
            p,
            rho=0.05,
            alpha=0.5,
            draws=args.num_draws,
            scores=scores,
        )
        if dev.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    n_params = sum(q.numel() for q in params)
    print(
        f'ResNet-20 w{args.width}, {s}x{s}, {n_params} parameters, P={p}, '
        f'R={args.num_draws}, {args.device} ({device_name(dev)}): '
        f'median {statistics.median(times):.2f} s per diagnostic '
        f'(runs: {", ".join(f"{t:.2f}" for t in times)}); '
        f'dlp_spearman {res["dlp_spearman"]:.3f}'
    )


if __name__ == '__main__':
    main()
