#!/usr/bin/env bash
# Mutation test of the model checker (issue 17, docs/model.md "Does it catch planted bugs?"):
# applies each planted bug of model/mutants/*.patch to a copy of the committed tree, builds
# ekg-core and ekg-model (release), and runs the results matrix against the expected table
# (model/examples/verdicts.rs). A bug is caught when a property cell differs (a counterexample
# where the table expects none, or one the table expects that disappeared); a moved state count
# alone does not count. Bounded: each check gets --timeout-secs and a memory limit, so a
# blown-up state space fails its row instead of exhausting the machine.
#
# The smaller models run too, each as its tests: the cluster model (model/tests/cluster.rs: two
# instances on one shared store, where races are lost) and the custody model
# (model/tests/custody.rs: storage-key epochs against a backup and a storage-key theft), the
# lists model (model/tests/lists.rs: list expansion, V27), the labels model
# (model/tests/labels.rs: V26 against a listed recipient without the entitlement) and the replay
# model (model/tests/replay.rs: V28.8, a token replayed at two instances on one store); a bug
# that fails one of their tests is caught as well.
#
#   scripts/model-mutants.sh [--full]      # table on stdout, logs in target/mutants/*.log
#   EKG_MUTANTS="13 15" scripts/model-mutants.sh   # only the patches whose names start so
set -euo pipefail
cd "$(dirname "$0")/.."
full=""
if [ "${1:-}" = "--full" ]; then full="--full"; fi
# The copy lives outside the repository (git apply inside a repository's subdirectory would
# skip paths outside it); the build cache stays under target/.
work="${TMPDIR:-/tmp}/ekg-mutants-$$"
timeout_secs=${EKG_MUTANT_TIMEOUT_SECS:-300}
mem_kib=${EKG_MUTANT_MEM_KIB:-8388608}
mkdir -p "$work"
export CARGO_TARGET_DIR="$PWD/target/mutants"
mkdir -p "$CARGO_TARGET_DIR"
trap 'rm -rf "$work"' EXIT

fresh_copy() {
  rm -rf "$work/ws"
  mkdir -p "$work/ws"
  # -m: fresh mtimes, so that cargo rebuilds what the previous mutant changed.
  git archive HEAD | tar -x -m -C "$work/ws"
}

# One run: build, then the matrix under the limits. Prints "exit N" last.
run_matrix() {
  local log=$1
  (cd "$work/ws" && cargo build --release --locked -q -p ekg-model --example verdicts) >"$log" 2>&1 || {
    echo "build failed" >>"$log"
    return 2
  }
  set +e
  (ulimit -v "$mem_kib"; timeout $((timeout_secs * 40)) "$CARGO_TARGET_DIR/release/examples/verdicts" $full \
    --timeout-secs "$timeout_secs") >>"$log" 2>&1
  local status=$?
  set -e
  return $status
}

# The smaller models' tests on the copy; prints the failing tests' names ("" when all pass).
run_cluster() {
  local log=$1
  local tests=(--test cluster --test custody --test lists --test labels --test replay)
  (cd "$work/ws" && cargo test --release --locked -q -p ekg-model "${tests[@]}" --no-run) >>"$log" 2>&1 || true
  (cd "$work/ws" && timeout 900 cargo test --release --locked -q -p ekg-model "${tests[@]}" --no-fail-fast) >>"$log" 2>&1 || true
  # `cargo test -q` lists the failed tests under "failures:", four spaces in.
  if grep -q "test result: FAILED" "$log"; then
    awk '/^failures:$/ { f = 1; next } f && /^    [a-z_0-9]+$/ { print $1 } /^test result/ { f = 0 }' "$log" | sort -u | paste -sd ',' -
  fi
}

echo "| planted bug | caught | cells that differ |"
echo "|---|---|---|"
fresh_copy
if ! run_matrix "$CARGO_TARGET_DIR/baseline.log"; then
  echo "the unmutated tree differs from the expected table: see $CARGO_TARGET_DIR/baseline.log" >&2
  exit 1
fi
if [ -n "$(run_cluster "$CARGO_TARGET_DIR/baseline-cluster.log")" ] || ! grep -q "test result: ok" "$CARGO_TARGET_DIR/baseline-cluster.log"; then
  echo "the unmutated tree fails a smaller model (cluster, custody, lists, labels, replay): see $CARGO_TARGET_DIR/baseline-cluster.log" >&2
  exit 1
fi
missed=0
for patch in model/mutants/*.patch; do
  name=$(basename "$patch" .patch)
  if [ -n "${EKG_MUTANTS:-}" ]; then
    wanted=no
    for w in $EKG_MUTANTS; do case "$name" in "$w"-*) wanted=yes ;; esac; done
    [ "$wanted" = yes ] || continue
  fi
  fresh_copy
  (cd "$work/ws" && git apply --verbose "$OLDPWD/$patch" >/dev/null)
  log="$CARGO_TARGET_DIR/$name.log"
  status=0
  run_matrix "$log" || status=$?
  cells=$(grep '^DIFFERS' "$log" | sed 's/^DIFFERS //' | sed 's/: expected.*got /: /' | paste -sd ';' - | sed 's/;/; /g' || true)
  cluster=""
  if ! grep -q "build failed" "$log"; then cluster=$(run_cluster "$CARGO_TARGET_DIR/$name-cluster.log"); fi
  if [ -n "$cluster" ]; then cells="${cells:+$cells; }smaller models' tests: $cluster"; fi
  if grep -q "build failed" "$log"; then
    echo "| $name | build failed | see $log |"
    missed=$((missed + 1))
  elif { [ "$status" -ne 0 ] && grep -q '^DIFFERS' "$log"; } || [ -n "$cluster" ]; then
    echo "| $name | yes | $cells |"
  elif [ "$status" -ne 0 ]; then
    echo "| $name | no (exit $status: out of time or memory) | see $log |"
    missed=$((missed + 1))
  else
    echo "| $name | **no** | |"
    missed=$((missed + 1))
  fi
done
echo
echo "$missed planted bug(s) not caught by a property of the ${full:+full }matrix."
[ "$missed" = 0 ]
