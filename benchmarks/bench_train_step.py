"""Time and memory of one training step for each model preset, on the hardware that runs it.

    python benchmarks/bench_train_step.py --presets 64 128 256 --out results/train_step_cpu.json
    python benchmarks/bench_train_step.py --presets 64 --batch 16 --threads 1 --precision fp32 bf16 --out ...
    python benchmarks/bench_train_step.py --device cuda --batch 16 --out results/train_step_cuda.json

Each preset (and precision) runs in its own subprocess so peak memory (CPU: max RSS; CUDA: max allocated) is its
own. ``--precision bf16`` times the step under CPU bf16 autocast, as ``python -m sparsesis.training.train --precision bf16``
trains (CUDA always runs bf16 autocast). Run it with nothing else on the CPU.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

from common import add_threads, write_result  # (and the repository on sys.path)


def one(preset: str, batch: int, device: str, steps: int, threads: int, precision: str = "fp32") -> dict:
    import torch

    from sparsesis.data.classes import LABELMEFACADE, one_hot
    from sparsesis.models.configs import preset as get_preset
    from sparsesis.models.diffusion import diffusion_loss
    from sparsesis.training.loop import mixed_precision
    from sparsesis.models.unet import UNet, count_parameters

    torch.set_num_threads(threads)
    cfg = get_preset(preset, LABELMEFACADE.num_channels)
    dev = torch.device(device)
    model = UNet(cfg).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    s = cfg.image_size
    x = torch.randn(batch, 3, s, s, device=dev).contiguous(memory_format=torch.channels_last)
    lay = one_hot(torch.randint(0, 10, (batch, s, s), device=dev), 10).contiguous(memory_format=torch.channels_last)
    ac = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else mixed_precision(precision)
    times = []
    for i in range(steps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with ac:
            loss = diffusion_loss(lambda z, tt: model(z, tt, lay), x, torch.rand(batch, device=dev),
                                  torch.randn_like(x)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    mem = (torch.cuda.max_memory_allocated() / 2 ** 30 if dev.type == "cuda"
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    step = sorted(times)[len(times) // 2]
    return {"preset": preset, "image_size": s, "parameters": count_parameters(model), "batch": batch,
            "device": device, "seconds_per_step": round(step, 3), "images_per_s": round(batch / step, 2),
            "peak_memory_gib": round(mem, 2), "threads": threads,
            "precision": "bf16" if dev.type == "cuda" else precision}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["64", "128", "256"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3)
    add_threads(p, 2)
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                   help="CPU training precision(s) to time (CUDA: always bf16 autocast)")
    p.add_argument("--out", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.batch, a.device, a.steps, a.threads, a.precision[0])))
        return
    rows = []
    for name in a.presets:
        for precision in a.precision if a.device == "cpu" else ["bf16"]:
            r = subprocess.run([sys.executable, __file__, "--one", name, "--batch", str(a.batch), "--device", a.device,
                                "--steps", str(a.steps), "--threads", str(a.threads), "--precision", precision],
                               capture_output=True, text=True)
            if r.returncode:
                print(r.stderr[-2000:], file=sys.stderr)
                continue
            row = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"preset {name:>4} {row['precision']}: {row['parameters'] / 1e6:6.1f} M params, "
                  f"{row['seconds_per_step']:7.3f} s/step at batch {a.batch} ({row['images_per_s']} img/s), "
                  f"peak {row['peak_memory_gib']} GiB on {a.device}")
    from sparsesis.evaluation.latency import cpu_description

    out = {"machine": cpu_description() if a.device == "cpu" else a.device, "rows": rows}
    write_result(a.out, out)


if __name__ == "__main__":
    main()
