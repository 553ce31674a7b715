#!/usr/bin/python3
"""Summarises scripts/bench.sh's interleaved native runs: LatentLab against PyTorch, run by run.

    bench/summarize_native.py RUNS.jsonl > native_vs_pytorch.json

RUNS.jsonl has one JSON object per run, in the order they ran: {"side": "latentlab" | "latentlab_openblas" |
"pytorch", "round": r, "model": "vae" | "vqvae", "threads": t, "result": <the tool's own JSON>}. For each
model and thread count it reports every side's training images/s and single-image latency as the median,
min, max and quartiles over the rounds, the ratio of LatentLab's median to PyTorch's, and the ratio of
each round's pair (LatentLab's run and PyTorch's run next to it), so a drift in the machine's load shows.
No best-case figures. The machine (CPU model, instruction set, OpenBLAS's core, LatentLab's GEMM choices)
comes from LatentLab's own report. Prints a table to stderr and the JSON to stdout.
"""
import json
import statistics
import subprocess
import sys


def spread(xs):
    v = sorted(xs)
    at = lambda q: v[round(q * (len(v) - 1))]
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "q1": at(0.25), "q3": at(0.75),
            "runs": xs}


def main():
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    ll_runs = [r for r in runs if r["side"] == "latentlab"]
    machine = ll_runs[0]["result"].get("gemm", {}) if ll_runs else {}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    torch_version = next((r["result"].get("torch") for r in runs if r["side"] == "pytorch"), None)
    out = {"what": "training images/s at batch 128 and single-image reconstruction latency; LatentLab and "
                   "PyTorch run in turn (scripts/bench.sh), medians over rounds",
           "cpu": machine.get("cpu"), "isa": machine.get("isa"), "openblas_core": machine.get("openblas_core"),
           "gemm_available": machine.get("available"), "torch": torch_version, "commit": commit,
           "rounds": max((r["round"] for r in runs), default=0), "results": []}
    lines = []
    for model in ("vae", "vqvae"):
        for threads in sorted({r["threads"] for r in runs}):
            sel = lambda side: [r for r in runs if r["side"] == side and r["model"] == model and r["threads"] == threads]
            ll, pt, ob = sel("latentlab"), sel("pytorch"), sel("latentlab_openblas")
            if not ll or not pt:
                continue
            ll_ips = [r["result"]["images_per_s"] for r in ll]
            pt_ips = [r["result"][f"{model}_images_per_s_{threads}t"] for r in pt]
            entry = {"model": model, "threads": threads,
                     "latentlab_images_per_s": spread(ll_ips), "pytorch_images_per_s": spread(pt_ips),
                     "ratio_of_medians": statistics.median(ll_ips) / statistics.median(pt_ips),
                     "ratio_per_round": [a / b for a, b in zip(ll_ips, pt_ips)],
                     "latentlab_latency_ms": spread([r["result"]["latency_ms"] for r in ll]),
                     "pytorch_latency_ms": spread([r["result"][f"{model}_latency_ms_{threads}t"] for r in pt]),
                     "gemm_choices": ll[len(ll) // 2]["result"].get("gemm", {}).get("choices")}
            if all("latency_ms_xnnpack" in r["result"] for r in ll):
                entry["latentlab_latency_ms_xnnpack"] = spread([r["result"]["latency_ms_xnnpack"] for r in ll])
            if ob:
                ob_ips = [r["result"]["images_per_s"] for r in ob]
                entry["latentlab_openblas_images_per_s"] = spread(ob_ips)
                entry["auto_over_openblas"] = statistics.median(ll_ips) / statistics.median(ob_ips)
            rr = entry["ratio_per_round"]
            lat_xnn = entry.get("latentlab_latency_ms_xnnpack")
            lines.append(f"{model:6} {threads}t  LatentLab {entry['latentlab_images_per_s']['median']:8.0f} "
                         f"({min(ll_ips):.0f}-{max(ll_ips):.0f})  PyTorch {entry['pytorch_images_per_s']['median']:8.0f} "
                         f"({min(pt_ips):.0f}-{max(pt_ips):.0f})  ratio {entry['ratio_of_medians']:.2f}x "
                         f"(rounds {min(rr):.2f}-{max(rr):.2f})"
                         + (f"  [OpenBLAS-only LatentLab {entry['latentlab_openblas_images_per_s']['median']:.0f}]" if ob else "")
                         + f"  latency core {entry['latentlab_latency_ms']['median']:.3f} ms"
                         + (f", XNNPACK {lat_xnn['median']:.3f} ms" if lat_xnn else "")
                         + f", PyTorch {entry['pytorch_latency_ms']['median']:.3f} ms")
            out["results"].append(entry)
    print(f"{out['cpu']} ({out['isa']}), OpenBLAS core {out['openblas_core']}, torch {torch_version}, "
          f"{out['rounds']} rounds", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
