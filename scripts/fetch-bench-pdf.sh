#!/usr/bin/env bash
# Fetches the large real PDF the `pages` benchmark reads: the LaTeX3 kernel
# sources (source3.pdf, 1,611 pages, pdfTeX), from Debian's
# texlive-latex-base-doc package, into target/bench-data/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-data/source3.pdf
if [ -f "$out" ]; then echo "$out already there"; exit 0; fi
mkdir -p target/bench-data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download texlive-latex-base-doc >/dev/null)
dpkg-deb --fsys-tarfile "$tmp"/texlive-latex-base-doc_*.deb \
  | tar -x -O ./usr/share/doc/texlive-doc/latex/l3kernel/source3.pdf > "$out"
echo "fetched $out ($(stat -c %s "$out") bytes)"
