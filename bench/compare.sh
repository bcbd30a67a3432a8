#!/usr/bin/env bash
# Side-by-side training-step benchmark: layercake against PyTorch (bench/torch_bench.py) on
# the same model shape, batch and step (PyTorch at its default thread count and at all cores),
# alternating them ROUNDS times in one run so that
# machine load affects both alike. Prints a Markdown table of the best round of each.
#   bench/compare.sh [--model gpt2-124m] [--batch 4] [--seq 64] [--steps 3] [--rounds 2]
set -euo pipefail
cd "$(dirname "$0")/.."
model=gpt2-124m batch=4 seq=64 steps=3 rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --seq) seq=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--model M] [--batch B] [--seq T] [--steps N] [--rounds R]" >&2; exit 2 ;;
  esac
done
bin=${LC_BIN:-build/layercake}
args=(--model "$model" --batch "$batch" --seq "$seq" --steps "$steps")
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 0; r < rounds; r++)); do
  "$bin" bench "${args[@]}" --json >>"$results"
  /usr/bin/python3 bench/torch_bench.py "${args[@]}" >>"$results"
  /usr/bin/python3 bench/torch_bench.py "${args[@]}" --threads "$(nproc)" >>"$results"
done
/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
best = {}
for r in rows:
    impl = r.get("impl", "layercake") + (f", {r['threads']} thread" + "s" * (r["threads"] > 1) if "impl" in r else "")
    if impl not in best or r["tokens_per_s"] > best[impl]["tokens_per_s"]:
        best[impl] = r
lc = best["layercake"]
print(f"{lc['model']}, batch {lc['batch']} x {lc['seq']} tokens, forward + backward + AdamW, "
      f"best of {len(rows) // 3} alternating rounds")
print()
print("| implementation | threads | ms/step | tokens/s | MFU | peak RSS (MB) |")
print("|---|---|---|---|---|---|")
for impl, r in best.items():
    mfu = r["tokens_per_s"] * lc["mfu"] / lc["tokens_per_s"]  # same FLOPs per token
    print(f"| {impl} | {r['threads']} | {r['ms_per_step']:.0f} | {r['tokens_per_s']:.1f} | "
          f"{100 * mfu:.1f}% | {r['peak_rss_mb']:.0f} |")
torch = max((r for k, r in best.items() if k != "layercake"), key=lambda r: r["tokens_per_s"])
print()
print(f"layercake / fastest PyTorch tokens/s: {lc['tokens_per_s'] / torch['tokens_per_s']:.2f}x "
      f"(measured matmul peak {lc['peak_gflops']:.0f} GFLOP/s)")
PY
