#!/usr/bin/env bash
# The layers of docs/DESIGN.md §9, checked: the core (algebra, rows, rng,
# reference, samplers, driver, CPU backend) builds on bytemuck, half and rayon
# alone, never imports the lab or a GPU crate outside its feature, and each
# feature builds on its own. Run by .ci/run; exits non-zero on any breach.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

echo "-- the core imports no lab module (src/lab is for the lab and the CLI only)"
if grep -rn --include='*.rs' -E '\bcrate::lab\b|\bgaussflow::lab\b' src | grep -v -E '^src/(lab|bin)/'; then
    echo "FAIL: core files above import the lab"; fail=1
fi

echo "-- GPU crates only inside their backends (and the cfg-gated glue that names them)"
# Any use of the wgpu / cudarc crates outside src/backend/{wgpu,cuda} must sit
# behind #[cfg(feature = ...)]: building with the features off proves it (below);
# this lists where they are named so a new place is seen in review.
grep -rln --include='*.rs' -E '\b(cudarc|pollster)::|&.*wgpu::Buffer' src \
    | grep -v -E '^src/backend/(wgpu|cuda)/' | sort | sed 's/^/   names a GPU crate: /'

echo "-- each feature set builds and lints on its own"
for features in "" "wgpu" "cuda" "serde" "lab" "candle" "wgpu,cuda"; do
    echo "   --no-default-features --features '$features'"
    cargo clippy -q -p gaussflow --lib --no-default-features --features "$features" -- -D warnings || fail=1
done

echo "-- the core's dependencies (default features off): bytemuck, half, rayon and what they pull in"
deps=$(cargo tree -q -p gaussflow -e normal --no-default-features --prefix none | sed 's/ (\*)//' | sort -u)
direct=$(cargo tree -q -p gaussflow -e normal --no-default-features --depth 1 --prefix none | sed 's/ (\*)//' | tail -n +2 | awk '{print $1}' | sort -u | tr '\n' ' ')
echo "   direct: $direct"
echo "   total:  $(echo "$deps" | wc -l) crates"
if [ "$direct" != "bytemuck half rayon " ]; then
    echo "FAIL: the core's direct dependencies must be exactly bytemuck, half, rayon"; fail=1
fi

exit $fail
