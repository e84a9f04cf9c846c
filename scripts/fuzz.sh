#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a fixed time and print what each did.
#
#   scripts/fuzz.sh [seconds_per_target] [target ...]     (default 60 s, every target)
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz into
# target/tools if `cargo fuzz` is missing. Builds once, then runs each target on its corpus
# (fuzz/corpus/<target>: the committed seed-* files plus what earlier runs found) with its
# dictionary (fuzz/dict/<target>.dict) if there is one. Logs go to fuzz/logs/<target>.log.
#
# Sanitizer: none by default (FUZZ_SANITIZER=address to change). The fuzzed crates forbid
# unsafe code, so AddressSanitizer could only find bugs in dependencies, at about half the
# executions per second; panics, overflow checks and debug assertions are on either way.
#
# Exit status: 0 when no target crashed, 1 when one did (the reproducer paths are printed),
# 2 when the build failed.
set -uo pipefail

cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
sanitizer=${FUZZ_SANITIZER:-none}

if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [seconds_per_target] [target ...]" >&2
    exit 2
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi

# cargo-fuzz: use the one on PATH, else the one in target/tools, else install it there.
if ! cargo fuzz --version >/dev/null 2>&1; then
    export PATH="$root/target/tools/bin:$PATH"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz.sh: installing cargo-fuzz into target/tools" >&2
        cargo install cargo-fuzz --locked --root "$root/target/tools" || exit 2
    fi
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz.sh: building the targets (sanitizer: $sanitizer; log: fuzz/logs/build.log)" >&2
mkdir -p fuzz/logs
build_start=$(date +%s)
if ! cargo +nightly fuzz build -s "$sanitizer" >fuzz/logs/build.log 2>&1; then
    tail -20 fuzz/logs/build.log >&2
    echo "fuzz.sh: build failed" >&2
    exit 2
fi
echo "fuzz.sh: built in $(($(date +%s) - build_start)) s" >&2

rows=()
crashed=()
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    artifacts=fuzz/artifacts/$t
    log=fuzz/logs/$t.log
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$artifacts" -type f | sort)
    dict=()
    if [ -f "fuzz/dict/$t.dict" ]; then
        dict=("-dict=fuzz/dict/$t.dict")
    fi
    echo "fuzz.sh: $t for $seconds s" >&2
    start=$(date +%s)
    cargo +nightly fuzz run -s "$sanitizer" "$t" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1
    status=$?
    wall=$(($(date +%s) - start))

    # libFuzzer's last words: "stat::number_of_executed_units: N" (print_final_stats), else the
    # last "#N ..." status line; "Done N runs in S second(s)" when the time ran out.
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        execs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)
    fi
    execs=${execs:-0}
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    secs=${secs:-$wall}
    rate=$((secs > 0 ? execs / secs : execs))
    size=$(find "$corpus" -type f | wc -l)
    new=$(comm -13 <(echo "$before") <(find "$artifacts" -type f | sort) | sed '/^$/d')
    crashes=$(echo -n "$new" | grep -c . || true)
    if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes="?"
        new="(exit $status without an artifact; see $log)"
    fi
    if [ "$crashes" != 0 ]; then
        crashed+=("$t: $new")
    fi
    rows+=("$(printf '%-20s %8s %12s %9s %8s %8s' "$t" "$secs" "$execs" "$rate" "$size" "$crashes")")
done

echo
echo "fuzz results $(date -u +%Y-%m-%dT%H:%MZ), $seconds s per target, sanitizer $sanitizer, $(nproc) cores"
printf '%-20s %8s %12s %9s %8s %8s\n' target seconds executions exec/s corpus crashes
printf '%s\n' "${rows[@]}"

if [ ${#crashed[@]} -gt 0 ]; then
    echo
    echo "CRASHES (reproduce: cargo +nightly fuzz run -s $sanitizer <target> <file>):"
    printf '  %s\n' "${crashed[@]}"
    exit 1
fi
