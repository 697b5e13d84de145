#!/usr/bin/env bash
# Builds the lm3s6965 bring-up firmware (examples/echo.rs, release) and checks it under QEMU from the
# host: boot banner, 64 KiB byte-exact echo, a full receive ring, reset and
# panic handling.
# Extra arguments go to qemu_board_check.py (e.g. --survey 20).
set -euo pipefail

boards="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$boards/qemu-lm3s6965"
cargo build --release --example echo --example deadline_panic --example slow_echo

out="$boards/target/thumbv7m-none-eabi/release"
exec python3 "$boards/scripts/qemu_board_check.py" \
    --elf "$out/examples/echo" \
    --panic-elf "$out/examples/deadline_panic" \
    --slow-elf "$out/examples/slow_echo" \
    "$@"
