#!/usr/bin/env bash
# Builds what is shipped, into dist/ (or $DIST_DIR):
#
#   batchinfer-VERSION-x86_64-unknown-linux-musl             the static binary: the dist
#                                                            profile (fat LTO, stripped),
#                                                            musl with mimalloc
#   batchinfer-VERSION-x86_64-unknown-linux-musl.tar.gz      the binary with README, LICENSE,
#                                                            CHANGELOG, man pages, completions
#   batchinfer-VERSION-*.whl                                 a Python wheel that puts the binary
#                                                            on the PATH (maturin, bindings = "bin")
#   SHA256SUMS                                               checksums of the three
#
# Needs the musl target (`rustup target add x86_64-unknown-linux-musl`), a C compiler
# for it (`musl-gcc`, Debian's musl-tools: zstd, lz4 and aws-lc are C), and for the
# wheel `pip install maturin wheel`. `--no-wheel` skips the wheel. The build takes
# about 25 minutes and 2,000 CPU-seconds on 2 cores from clean, and fat LTO needs
# about 7 GB of memory (docs/benchmarks.md, "Builds and binaries"); the Dockerfile
# copies the static binary into an image.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
wheel=yes
for arg in "$@"; do
  case "$arg" in
    --no-wheel) wheel=no ;;
    *) echo "usage: scripts/dist.sh [--no-wheel]" >&2; exit 2 ;;
  esac
done

version=$(cargo metadata --no-deps --format-version 1 \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["packages"][0]["version"])')
name="batchinfer-$version-$target"
dist=${DIST_DIR:-dist}
mkdir -p "$dist"
target_dir=$(cargo metadata --no-deps --format-version 1 \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

command -v musl-gcc >/dev/null || { echo "dist.sh: musl-gcc not found (apt-get install musl-tools)" >&2; exit 2; }

# A static executable rather than a static PIE: no run-time relocations, and `ldd`
# says "not a dynamic executable". With --target, RUSTFLAGS reach only the target's
# crates, not the build scripts; maturin below gets the same, so it rebuilds nothing.
export RUSTFLAGS="${RUSTFLAGS:-} -C relocation-model=static"
start=$(date +%s)
cargo build --locked --profile dist --target "$target"
echo "dist.sh: build took $(( $(date +%s) - start )) s"
binary="$target_dir/$target/dist/batchinfer"

# A static binary has no interpreter and no shared libraries.
linkage=$(ldd "$binary" 2>&1 || true)
case "$linkage" in
  *"not a dynamic executable"*) ;;
  *) echo "dist.sh: $binary is not a static executable:" >&2; echo "$linkage" >&2; exit 1 ;;
esac
cp "$binary" "$dist/$name"
"$dist/$name" --version

# The archive: the binary, its documentation, manual pages and completion scripts.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/man" "$stage/$name/completions"
cp "$binary" "$stage/$name/batchinfer"
cp README.md LICENSE CHANGELOG.md "$stage/$name/"
"$binary" man --dir "$stage/$name/man" 2>/dev/null
"$binary" completions bash > "$stage/$name/completions/batchinfer.bash"
"$binary" completions zsh > "$stage/$name/completions/_batchinfer"
"$binary" completions fish > "$stage/$name/completions/batchinfer.fish"
tar -C "$stage" -czf "$dist/$name.tar.gz" "$name"

rm -f "$dist"/batchinfer-"$version"-*.whl   # an earlier run's, not in this run's SHA256SUMS
if [ "$wheel" = yes ]; then
  # maturin builds the same target and profile, so cargo finds the binary built above.
  # The static binary needs no particular libc: the wheel says so with both Linux tags.
  (cd scripts/wheel && maturin build --locked --target "$target" --compatibility musllinux_1_2 --out "$stage/wheel")
  built=$(ls "$stage"/wheel/*.whl)
  python3 -m wheel tags --remove --platform-tag manylinux_2_17_x86_64.musllinux_1_2_x86_64 "$built" >/dev/null
  cp "$stage"/wheel/*manylinux*.whl "$dist/"
fi

(cd "$dist" && sha256sum "$name" "$name.tar.gz" $(ls batchinfer-"$version"-*.whl 2>/dev/null) > SHA256SUMS)
ls -l "$dist"
cat "$dist/SHA256SUMS"
