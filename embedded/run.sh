#!/usr/bin/env bash
# Builds the firmware and its liveguard-free baseline, runs the firmware on
# QEMU's mps2-an386 (Cortex-M4F), checks the flash budget and prints every
# measurement. Exits non-zero if a check on the device fails, QEMU does not
# exit by itself, or the core takes more than 128 KiB of flash.
#
#   embedded/run.sh            # needs qemu-system-arm and the thumbv7em-none-eabihf target
set -euo pipefail
cd "$(dirname "$0")"

elf=target/thumbv7em-none-eabihf/release/liveguard-embedded

# Flash is .text + .rodata (+ the vector table), read from the section headers.
flash() {
    local total=0 size
    for size in $(readelf -SW "$1" | sed -n -E 's/.*\.(vector_table|text|rodata) +PROGBITS +[0-9a-f]+ [0-9a-f]+ ([0-9a-f]+) .*/\2/p'); do
        total=$((total + 16#$size))
    done
    echo "$total"
}

cargo build --release --features baseline --quiet
baseline=$(flash "$elf")
cargo build --release --quiet
full=$(flash "$elf")
core=$((full - baseline))

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# The firmware exits through semihosting; the timeout catches a hang.
status=0
timeout 120 cargo run --release --quiet >"$out" 2>&1 || status=$?
cat "$out"

echo "NUM flash firmware=$full baseline=$baseline core=$core"
if [ "$core" -gt $((128 * 1024)) ]; then
    echo "FAIL budget: the core takes $core bytes of flash, more than 128 KiB"
    exit 1
fi
echo "PASS budget: the core takes at most 128 KiB of flash"

if [ "$status" -ne 0 ]; then
    echo "firmware failed (exit $status)" >&2
    exit 1
fi
grep -q '^RESULT ' "$out" || { echo "firmware printed no RESULT line" >&2; exit 1; }
if grep -q '^FAIL ' "$out"; then exit 1; fi
