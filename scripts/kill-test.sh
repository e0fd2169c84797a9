#!/usr/bin/env bash
# Kill harness: runs `edp run` under `mpirun -np 2` on a synthetic tree, SIGKILLs the
# whole job or one rank at a random instant, re-runs, and checks that
#   - every granule is present with its manifest size and sha256 (`edp verify`);
#   - no temporary file remains;
#   - the data equal a clean run's (every value, as ncdump prints it at full
#     precision, global attributes that name the run - dates, uuid - aside);
#   - the re-run redid only what was missing (what the killed run recorded is skipped).
#
# Usage: scripts/kill-test.sh [--trials N] [--keep]     (EDP=path/to/edp to choose the binary)
# Prints one line per trial and "K/N trials passed"; exits 1 if any trial failed.
set -uo pipefail  # no -e: every failure is checked and reported per trial

trials=20
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --trials) trials="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--trials N] [--keep]" >&2; exit 2 ;;
  esac
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
EDP="${EDP:-$repo/target/release/edp}"
[ -x "$EDP" ] || { echo "no edp binary at $EDP (cargo build --release, or set EDP)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "mpirun not on PATH (scripts/setup.sh)" >&2; exit 2; }
command -v ncdump >/dev/null || { echo "ncdump not on PATH (scripts/setup.sh)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
unset EDP_MPI

work="$(mktemp -d "${TMPDIR:-/tmp}/edp-kill-test.XXXXXX")"
cleanup() { [ "$keep" = 1 ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT

# Inputs: LLC24 x 10 levels, 6 months; native sea surface height, surface stress,
# temperature/salinity and velocity (2D, 3D and vector fields: 24 granules).
"$EDP" synth --out "$work/syn" --n 24 --levels 10 --months 6 >/dev/null 2>&1 || { echo "edp synth failed" >&2; exit 1; }
jobs="$work/jobs.txt"
printf "%s\n" "[0, 'native', 'AVG_MON', 'all']" "[6, 'native', 'AVG_MON', 'all']" \
  "[15, 'native', 'AVG_MON', 'all']" "[17, 'native', 'AVG_MON', 'all']" > "$jobs"
run_args=(run --jobs "$jobs" --source "$work/syn" --grid "$work/syn/grid" --threads 1 --progress 0)

# The values of a granule, as text: everything ncdump prints at full precision except
# the global attributes that differ between any two runs.
values() {
  ncdump -p 9,17 "$1" | grep -Ev '^[[:space:]]*:(date_created|date_modified|date_issued|date_metadata_modified|uuid) ='
}

t0=$(date +%s.%N)
mpirun -np 2 "$EDP" "${run_args[@]}" --dest "$work/clean" >"$work/clean.out" 2>"$work/clean.log" \
  || { echo "clean run failed:"; cat "$work/clean.log"; exit 1; }
clean_s=$(echo "$(date +%s.%N) - $t0" | bc)
total=$(find "$work/clean" -name '*.nc' | wc -l)
# The producing part (the summary's "written in X s"): kills fall within it.
produce_s=$(grep -Eo 'written in [0-9.]+ s' "$work/clean.out" | grep -Eo '[0-9.]+' | head -1)
echo "clean run: $total granules in ${clean_s} s (producing: ${produce_s} s)"

# All processes of a process tree, root first.
tree() {
  local pids=("$1") i=0
  while [ $i -lt ${#pids[@]} ]; do
    for c in $(pgrep -P "${pids[$i]}" 2>/dev/null); do pids+=("$c"); done
    i=$((i + 1))
  done
  echo "${pids[@]}"
}

passed=0
for trial in $(seq 1 "$trials"); do
  dest="$work/t$trial"
  mode=$([ $((RANDOM % 2)) = 0 ] && echo job || echo rank)
  # A random instant within the clean run's duration (at least after start-up).
  # Start-up (launch, planning) is the clean run's time outside production; the kill
  # falls at a random instant of production after it.
  frac=$((RANDOM % 1000))
  delay=$(echo "scale=3; ($clean_s - $produce_s) * 0.7 + $frac * $produce_s / 1000" | bc)
  setsid mpirun -np 2 "$EDP" "${run_args[@]}" --dest "$dest" >"$dest.log" 2>&1 &
  launcher=$!
  sleep "$delay"
  # The ranks: edp processes under mpirun.
  pids=($(tree "$launcher"))
  ranks=($(for p in "${pids[@]}"; do [ "$(cat /proc/$p/comm 2>/dev/null)" = edp ] && echo "$p"; done))
  if [ "$mode" = job ]; then
    kill -KILL "${pids[@]}" 2>/dev/null || true
  elif [ ${#ranks[@]} -gt 0 ]; then
    kill -KILL "${ranks[$((RANDOM % ${#ranks[@]}))]}" 2>/dev/null || true
  fi
  # mpirun aborts the job after a lost rank; make sure nothing is left either way.
  for _ in $(seq 1 100); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
  kill -KILL $(tree "$launcher") 2>/dev/null || true
  wait "$launcher" 2>/dev/null || true

  before=$(find "$dest" -name '*.nc' 2>/dev/null | wc -l)
  recorded=$(cat "$dest"/.edp/journal-*.jsonl 2>/dev/null | grep -c '"status":"done"' || true)
  if [ -f "$dest/edp-manifest.json" ]; then
    recorded=$((recorded + $(grep -o '"status": *"done"' "$dest/edp-manifest.json" | wc -l)))
  fi

  why=""
  if ! mpirun -np 2 "$EDP" "${run_args[@]}" --dest "$dest" >"$dest.rerun.log" 2>&1; then
    why="re-run failed (see $dest.rerun.log)"
  fi
  if [ -z "$why" ] && ! "$EDP" verify "$dest" >"$dest.verify.log" 2>&1; then
    why="edp verify failed: $(tail -3 "$dest.verify.log" | tr '\n' ' ')"
  fi
  temps=$(find "$dest" -name '.*.tmp-*' | wc -l)
  [ -z "$why" ] && [ "$temps" != 0 ] && why="$temps temporary file(s) left"
  if [ -z "$why" ]; then
    n=$(find "$dest" -name '*.nc' | wc -l)
    [ "$n" = "$total" ] || why="$n granules, not $total"
  fi
  if [ -z "$why" ]; then
    while read -r g; do
      rel="${g#$work/clean/}"
      if ! cmp -s <(values "$g") <(values "$dest/$rel"); then why="data differ: $rel"; break; fi
    done < <(find "$work/clean" -name '*.nc')
  fi
  # The re-run's summary line: "<n> tasks: <d> done, <f> failed, <s> skipped (done before), ...".
  summary=$(grep -E '^[0-9]+ tasks: ' "$dest.rerun.log" | tail -1 || true)
  done_now=$(echo "$summary" | grep -Eo '[0-9]+ done' | grep -Eo '[0-9]+' || echo 0)
  skipped=$(echo "$summary" | grep -Eo '[0-9]+ skipped' | grep -Eo '[0-9]+' || echo 0)
  if [ -z "$why" ]; then
    # Everything the killed run recorded is skipped; only the rest is redone.
    [ "$skipped" -ge "$recorded" ] || why="re-run skipped $skipped, but $recorded were recorded"
    [ $((skipped + done_now)) = "$total" ] || why="re-run: $skipped skipped + $done_now done != $total"
  fi
  if [ -z "$why" ]; then
    passed=$((passed + 1))
    hit=$([ "$done_now" -gt 0 ] && echo "mid-run" || echo "after the last granule")
    echo "trial $trial: killed the $mode at ${delay}s ($hit): $before granules, $recorded recorded; re-run skipped $skipped, redid $done_now; verify, temp files and data ok"
  else
    echo "trial $trial: killed the $mode at ${delay}s: FAILED: $why"
    keep=1
  fi
done
echo "$passed/$trials trials passed"
[ "$passed" = "$trials" ]
