#!/usr/bin/env bash
# The aarch64 NEON quantized-matmul kernels (crates/metallic/src/cpu/ops/
# matmul_quant/neon.rs), cross-compiled and run under qemu user-mode
# emulation: the matmul_quant tests, once on a CPU model with `dotprod`
# (both levels run and must agree bit for bit) and once on one without
# (Cortex-A57, Armv8.0: the base NEON level alone). Installs the cross
# toolchain if missing (apt, Debian/Ubuntu); fails, never skips, if it cannot.
# Called by scripts/test.sh; runs on its own too.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu

die() {
    echo "test_aarch64: $*" >&2
    exit 1
}

echo "== aarch64: toolchain"
if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null ||
    [ ! -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ]; then
    command -v apt-get >/dev/null || die "qemu-aarch64 / aarch64-linux-gnu-gcc missing and no apt-get to install them"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
fi
command -v qemu-aarch64 >/dev/null || die "qemu-aarch64 is missing (apt: qemu-user)"
command -v aarch64-linux-gnu-gcc >/dev/null || die "aarch64-linux-gnu-gcc is missing (apt: gcc-aarch64-linux-gnu)"
[ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] || die "no aarch64 libc in $SYSROOT (apt: libc6-dev-arm64-cross)"
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET" || die "rust target $TARGET is missing and could not be added"
fi
qemu-aarch64 --version | head -1

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc

# CPU model -> the levels the test must report (`simd levels on this CPU:`).
for run in "max:neon-dotprod, neon" "cortex-a57:neon"; do
    cpu=${run%%:*}
    want=${run#*:}
    echo "== aarch64: matmul_quant tests on qemu -cpu $cpu (expect levels: $want)"
    log=$(mktemp)
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT -cpu $cpu" \
        cargo test --target "$TARGET" -p metallic --lib matmul_quant -- --nocapture 2>&1 | tee "$log"
    # (Parallel tests may print after another test's name on the same line.)
    got=$(sed -n 's/.*simd levels on this CPU: //p' "$log")
    [ "$got" = "$want" ] || die "qemu -cpu $cpu: levels '$got', expected '$want'"
    formats=$(grep -cF "x level(s) [$want] match the scalar vec_dot" "$log" || true)
    [ "$formats" -eq 6 ] || die "qemu -cpu $cpu: $formats of 6 formats checked"
    rm -f "$log"
done
echo "== aarch64: NEON kernels pass on both CPU models"
