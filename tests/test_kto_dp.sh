#!/usr/bin/env bash
# tests/test_kto_dp.sh: a dpo stage with `loss: kto` over `mpirun -np 2` against one process on
# the same global batch (tests/fixtures/kto.jsonl imported as an unpaired dataset). KTO's
# reference point z0 is summed over every micro-batch of every process before a step's first
# backward, so every training row's loss, z0 (`kl`) and rewards equal the 1-process run's to
# 1e-5 relative; so does a validation pass over the whole validation set (its z0 over all its
# batches on every process).
#   test_kto_dp.sh LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON MPIEXEC
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4 MPIEXEC=$5
rm -rf "$TMP"
mkdir -p "$TMP"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
die() { echo "FAIL: $*"; exit 1; }

"$LC" tokenizer train --vocab-size 300 --out "$TMP/tok.json" "$SRC/tests/fixtures/kto.jsonl" \
  >"$TMP/prep.log" 2>&1 || die "tokenizer train: $(cat "$TMP/prep.log")"
"$LC" data import --kind unpaired --tokenizer "$TMP/tok.json" --out "$TMP/kto.h5" \
  "$SRC/tests/fixtures/kto.jsonl" >>"$TMP/prep.log" 2>&1 || die "import: $(cat "$TMP/prep.log")"
"$LC" data import --kind lm --tokenizer "$TMP/tok.json" --out "$TMP/lm.h5" \
  "$SRC/tests/fixtures/doc_a.txt" >>"$TMP/prep.log" 2>&1 || die "import: $(cat "$TMP/prep.log")"
# a start model from one pretrain step, then KTO in micro-batches of 2 examples (2 per process
# and step with 2 processes, 4 with one)
cat >"$TMP/kto.yaml" <<'YAML'
name: kto-dp
seed: 5
threads: 1
tokenizer: tok.json
model: {n_layer: 2, n_head: 2, d_model: 32, max_seq_len: 72}
stages:
  - {name: pretrain, kind: pretrain, data: {train: lm.h5}, steps: 1, batch_size: 2,
     micro_batch_size: 1}
  - {name: kto, kind: dpo, init: pretrain, loss: kto, data: {train: kto.h5, val: kto.h5},
     steps: 6, batch_size: 8, micro_batch_size: 2, beta: 0.5, optim: {lr: 3.0e-3},
     log: {every: 1}, val: {every: 3, batches: 100}, desirable_weight: 1.2}
YAML
cd "$TMP" || die "no $TMP"
"$LC" run kto.yaml output_dir="$TMP/one" >"$TMP/one.log" 2>&1 || die "1 process: $(tail -5 one.log)"
"$MPIEXEC" --oversubscribe -np 2 "$LC" run kto.yaml output_dir="$TMP/two" >"$TMP/two.log" 2>&1 ||
  die "2 processes: $(tail -5 two.log)"
"$PY" - "$TMP/one/kto/metrics.jsonl" "$TMP/two/kto/metrics.jsonl" <<'PY' || die "metrics differ"
import json, sys
keys = ("loss", "kl", "rewards/desirable", "rewards/undesirable", "desirable")
rows = []
for path in sys.argv[1:]:
    rows.append({(r["step"], r.get("split", "")): r for r in map(json.loads, open(path))})
assert rows[0].keys() == rows[1].keys(), f"rows differ: {sorted(rows[0])} vs {sorted(rows[1])}"
assert len([k for k in rows[0] if k[1] == "val"]) == 2 and len(rows[0]) == 8, sorted(rows[0])
worst = 0.0
for k in sorted(rows[0]):
    for key in keys:
        x, y = rows[0][k][key], rows[1][k][key]
        rel = abs(x - y) / max(abs(x), 1e-6)
        worst = max(worst, rel)
        assert rel <= 1e-5, f"step {k}: {key} {x!r} (1 process) vs {y!r} (2)"
assert rows[0][(6, "")]["kl"] > 0 and rows[0][(6, "val")]["kl"] > 0, "z0 stayed 0"
print(f"kto over 2 processes vs 1: worst relative difference {worst:.2e} over {len(rows[0])} rows")
PY
echo "PASS"
