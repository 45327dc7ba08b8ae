#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary (training tools; PyPI's kenlm gives only the query module).
#
#   quality_models/build_kenlm.sh [PREFIX]     # default PREFIX: ~/.cache/crawl2model/kenlm
#
# The KenLM sdist on PyPI holds the full C++ sources; they build with cmake and
# Debian's Boost dev packages (about 2-3 minutes on 2 cores). Needs, as root:
#   apt-get install -y cmake g++ libboost-program-options-dev libboost-system-dev \
#       libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev
# Prints the folder holding the binaries; pass it as --bin-dir or $KENLM_BIN.
set -euo pipefail

PREFIX="${1:-${HOME}/.cache/crawl2model/kenlm}"
PYTHON="${PYTHON:-python3}"
if [[ -x "$PREFIX/bin/lmplz" && -x "$PREFIX/bin/build_binary" ]]; then
    echo "$PREFIX/bin"
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation -d "$work" "kenlm>=0.2" >&2
tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
src="$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -1)"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER=6 >&2
cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)" >&2
mkdir -p "$PREFIX/bin"
cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$PREFIX/bin/"
echo "$PREFIX/bin"
