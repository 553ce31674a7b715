#!/usr/bin/python3
"""PyTorch reference figures for LatentLab's 10-epoch MLP VAE / AE training, over several seeds.

Run from anywhere with Debian's python3-torch (the python3 first on PATH may lack torch):

    /usr/bin/python3 tools/pytorch/reference_train.py --model vae --seeds 1 2 3 --out models/pytorch_reference.json
    /usr/bin/python3 tools/pytorch/reference_train.py --model ae  --seeds 1 2 3 --out models/pytorch_reference.json

Models, data reading and float64 metrics are imported from tests/golden/make_vae_golden.py (one source
of truth). For each seed: torch.set_num_threads(1), torch.manual_seed(seed), build the model, Adam lr 1e-3,
batch 128, reshuffled every epoch (DataLoader shuffle=True over the 60k training images, pixels / 255),
10 epochs:
  vae: exactly pytorch/examples vae/main.py: sigmoid output, F.binary_cross_entropy(reduction='sum') + KLD,
       summed over the batch;
  ae:  F.binary_cross_entropy_with_logits(reduction='sum'), summed over batch and pixels.

Test figures (10k test images, forward in float32 in batches of 1000, every per-image term in float64 from
the float32 outputs, BCE from logits: softplus(l) - x*l):
  vae: loss         = mean of BCE + KL with ONE sampled z per image (first sampling pass);
       loss_sampled_mean / loss_sampled_std = mean and std (ddof=1) of that figure over 10 independent
       sampling passes (pass 0 is `loss`);
       loss_mean_z  = mean of BCE + KL with z = mu (deterministic); also bce_mean_z and kl.
  ae:  bce = mean per-image BCE from logits; mse = mean per-image sum_pixels (sigmoid(l) - x)^2.
They are printed after every epoch (the VAE with one sampling pass) and stored after every epoch too.

Evaluation never touches the global RNG: sampled z uses a private torch.Generator seeded with
EVAL_SEED_OFFSET + seed, so the training trajectory is the same whether or not one evaluates per epoch.
(pytorch/examples' test() draws from the global RNG between epochs, so its exact trajectory for a given
seed differs from this one; that is one seed's draw against another, not a different method.)

images_per_s times the training loop only (forward, backward, Adam step, the loss.item() per batch and
the DataLoader), summed over the epochs; evaluation is excluded. It is wall-clock time on whatever the
machine is doing at the time, so it is noisy when other work shares the CPU.

--out: a JSON file holding one section per model ("vae", "ae"). If it exists, the section for --model is
replaced and the other is kept, so both commands above can write the same file.
"""
import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(ROOT, "tests", "golden", "make_vae_golden.py")

_spec = importlib.util.spec_from_file_location("make_vae_golden", GOLDEN)
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)

EPOCHS = 10
BATCH = 128
LR = 1e-3
EVAL_BATCH = 1000
SAMPLING_PASSES = 10
EVAL_SEED_OFFSET = 1000003


# ---- evaluation ----------------------------------------------------------------------------------

def eval_vae(model, test_x, gen=None):
    """Mean per-image BCE+KL (float64). gen=None: z = mu; else one z ~ q(z|x) per image drawn with gen."""
    model.eval()
    loss_sum = bce_sum = kl_sum = 0.0
    with torch.no_grad():
        for i in range(0, len(test_x), EVAL_BATCH):
            x = test_x[i:i + EVAL_BATCH]
            mu, logvar = model.encode(x)
            if gen is None:
                z = mu
            else:
                eps = torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
                z = mu + eps * torch.exp(0.5 * logvar)
            logits = model.decode_logits(z)
            bce = golden.bce_from_logits_f64(logits, x)
            kl = golden.kl_f64(mu, logvar)
            loss_sum += (bce + kl).sum().item()
            bce_sum += bce.sum().item()
            kl_sum += kl.sum().item()
    model.train()
    n = len(test_x)
    return {"loss": loss_sum / n, "bce": bce_sum / n, "kl": kl_sum / n}


def eval_ae(model, test_x):
    model.eval()
    bce_sum = mse_sum = 0.0
    with torch.no_grad():
        for i in range(0, len(test_x), EVAL_BATCH):
            x = test_x[i:i + EVAL_BATCH]
            logits = model(x)
            bce_sum += golden.bce_from_logits_f64(logits, x).sum().item()
            mse_sum += ((torch.sigmoid(logits.double()) - x.double()) ** 2).sum(dim=1).sum().item()
    model.train()
    n = len(test_x)
    return {"bce": bce_sum / n, "mse": mse_sum / n}


# ---- one run -------------------------------------------------------------------------------------

def vae_loss(model, data):
    recon, mu, logvar = model(data)
    return golden.vae_loss_function(recon, data, mu, logvar)


def ae_loss(model, data):
    return F.binary_cross_entropy_with_logits(model(data), data, reduction='sum')


def run(kind, seed, train_x, test_x):
    torch.manual_seed(seed)
    model = golden.VAE() if kind == "vae" else golden.AE()
    loss_fn = vae_loss if kind == "vae" else ae_loss
    eval_gen = torch.Generator().manual_seed(EVAL_SEED_OFFSET + seed)

    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(train_x),
                                         batch_size=BATCH, shuffle=True)
    model.train()
    train_seconds = 0.0
    epochs = []
    for epoch in range(1, EPOCHS + 1):
        t0 = time.perf_counter()
        train_loss = 0.0
        for (data,) in loader:
            optimizer.zero_grad()
            loss = loss_fn(model, data)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        dt = time.perf_counter() - t0
        train_seconds += dt
        rec = {"epoch": epoch, "train_loss": train_loss / len(train_x), "train_seconds": dt}
        if kind == "vae":
            s = eval_vae(model, test_x, eval_gen)          # one sampling pass
            m = eval_vae(model, test_x, None)
            rec.update({"loss": s["loss"], "loss_mean_z": m["loss"], "bce_mean_z": m["bce"], "kl": m["kl"]})
            print(f"  vae seed {seed} epoch {epoch:2d}: train {rec['train_loss']:.4f}  "
                  f"test loss (1 sampled z) {rec['loss']:.4f}  loss_mean_z {rec['loss_mean_z']:.4f}  "
                  f"[{dt:.1f} s]", flush=True)
        else:
            r = eval_ae(model, test_x)
            rec.update(r)
            print(f"  ae  seed {seed} epoch {epoch:2d}: train {rec['train_loss']:.4f}  "
                  f"test bce {r['bce']:.4f}  mse {r['mse']:.4f}  [{dt:.1f} s]", flush=True)
        epochs.append(rec)

    final = {"seed": seed}
    if kind == "vae":
        passes = [epochs[-1]["loss"]] + [eval_vae(model, test_x, eval_gen)["loss"]
                                         for _ in range(SAMPLING_PASSES - 1)]
        m = eval_vae(model, test_x, None)
        final.update({
            "loss": passes[0],
            "loss_sampled_mean": float(np.mean(passes)),
            "loss_sampled_std": float(np.std(passes, ddof=1)),
            "loss_sampled_passes": passes,
            "loss_mean_z": m["loss"],
            "bce_mean_z": m["bce"],
            "kl": m["kl"],
        })
    else:
        final.update(eval_ae(model, test_x))
    final["train_loss_last_epoch"] = epochs[-1]["train_loss"]
    final["train_seconds"] = train_seconds
    final["images_per_s"] = EPOCHS * len(train_x) / train_seconds
    final["per_epoch"] = epochs
    return final


def summarise(runs, keys):
    out = {}
    for k in keys:
        v = [r[k] for r in runs]
        out[k] = {"mean": float(np.mean(v)),
                  "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                  "min": float(np.min(v)), "max": float(np.max(v))}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["vae", "ae"], required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", required=True, help="JSON file; the other model's section is kept")
    ap.add_argument("--data-dir", default=golden.DATA_DIR)
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    train_x = golden.read_idx_images(os.path.join(args.data_dir, "train-images-idx3-ubyte"))
    test_x = golden.read_idx_images(os.path.join(args.data_dir, "t10k-images-idx3-ubyte"))
    assert train_x.shape == (60000, 784) and test_x.shape == (10000, 784)
    print(f"torch {torch.__version__}, numpy {np.__version__}, threads {torch.get_num_threads()}, "
          f"data {args.data_dir}", flush=True)

    runs = []
    for seed in args.seeds:
        r = run(args.model, seed, train_x, test_x)
        if args.model == "vae":
            print(f"vae seed {seed}: loss {r['loss']:.4f}  sampled {r['loss_sampled_mean']:.4f} "
                  f"± {r['loss_sampled_std']:.4f} (10 passes)  loss_mean_z {r['loss_mean_z']:.4f}  "
                  f"{r['images_per_s']:.0f} images/s", flush=True)
        else:
            print(f"ae seed {seed}: bce {r['bce']:.4f}  mse {r['mse']:.4f}  "
                  f"{r['images_per_s']:.0f} images/s", flush=True)
        runs.append(r)

    if args.model == "vae":
        keys = ["loss", "loss_sampled_mean", "loss_sampled_std", "loss_mean_z", "bce_mean_z", "kl",
                "images_per_s"]
        after1 = ["loss", "loss_mean_z"]
    else:
        keys = ["bce", "mse", "images_per_s"]
        after1 = ["bce", "mse"]
    summary = summarise(runs, keys)
    summary["after_epoch_1"] = summarise([r["per_epoch"][0] for r in runs], after1)

    cmd = "/usr/bin/python3 " + " ".join(
        [os.path.relpath(os.path.abspath(__file__), ROOT)] + (argv if argv is not None else sys.argv[1:]))
    section = {
        "model": args.model,
        "architecture": (golden.VAE.__doc__ if args.model == "vae" else golden.AE.__doc__).strip(),
        "command": cmd,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "epochs": EPOCHS, "batch_size": BATCH, "optimizer": "Adam", "lr": LR, "shuffle": "every epoch",
        "seeds": args.seeds,
        "eval": {"batch": EVAL_BATCH, "precision": "float32 forward, float64 per-image terms, BCE from logits",
                 "sampling_passes": SAMPLING_PASSES if args.model == "vae" else None,
                 "sampling_rng": (f"private torch.Generator seeded EVAL_SEED_OFFSET + seed = {EVAL_SEED_OFFSET} + seed"
                                  if args.model == "vae" else None)},
        "speed_note": ("images_per_s = 10 epochs * 60000 / wall seconds of the training loop only "
                       "(eval excluded), 1 thread, on a 2-core machine shared with other work: noisy"),
        "summary": summary,
        "runs": runs,
    }

    data = {}
    if os.path.exists(args.out):
        with open(args.out) as f:
            data = json.load(f)
    data["description"] = ("PyTorch reference figures for LatentLab's MLP VAE/AE, 10 epochs; "
                           "made by tools/pytorch/reference_train.py (see its docstring)")
    data[args.model] = section
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)

    print(f"{args.model} summary over seeds {args.seeds}:")
    for k in keys:
        s = summary[k]
        print(f"  {k:18s} mean {s['mean']:.4f}  std {s['std']:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
