# tests/dp_lib.sh: what the data-parallel run tests share (sourced by test_dp.sh, test_dp_rl.sh
# with their arguments, after setting FIXTURE to their recipe in tests/fixtures/run/):
#   LAYERCAKE SOURCE_DIR SCRATCH_DIR PYTHON MPIEXEC
# It sets LC, SRC, TMP, PY, MPIEXEC, RECIPE, a fresh TMP, the failure counter and fail, MPI (the
# launcher for 2 processes) and run1 / run2 NAME [overrides...]: the recipe with one or two
# processes into TMP/NAME, its output in TMP/NAME.log.
set -uo pipefail
LC=$1 SRC=$2 TMP=$3 PY=$4 MPIEXEC=$5
RECIPE=$SRC/tests/fixtures/run/$FIXTURE
rm -rf "$TMP"
mkdir -p "$TMP"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# mpirun as root (CI containers) and more ranks than cores need saying so
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=("$MPIEXEC" --oversubscribe -np 2)

run1() { "$LC" run "$RECIPE" output_dir="$TMP/$1" "${@:2}" >"$TMP/$1.log" 2>&1; }
run2() { "${MPI[@]}" "$LC" run "$RECIPE" output_dir="$TMP/$1" "${@:2}" >"$TMP/$1.log" 2>&1; }
