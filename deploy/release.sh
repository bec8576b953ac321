#!/usr/bin/env bash
# Packs a Sentio release tarball: bin/ (sentio, sentio-scheduler,
# sentio-executor) and deploy/ (systemd units, installer, CloudFormation),
# the layout the CloudFormation user data unpacks into /opt/sentio.
#
#   deploy/release.sh [--bin DIR] [--out FILE] [--upload s3://bucket/key]
#
# --bin DIR   binaries to pack (default: build them with `cargo build --release`
#             and pack target/release). Build on glibc <= 2.34 for Amazon Linux
#             2023 (see docs/deploy.md).
# --out FILE  the tarball (default ./sentio-x86_64-linux.tar.gz)
# --upload    copy it to S3 with the AWS CLI afterwards
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
bin=""
out="$PWD/sentio-x86_64-linux.tar.gz"
upload=""

while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --upload) upload=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "release.sh: unknown option: $1" >&2; exit 2 ;;
  esac
done

if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --locked --bins)
  bin="$repo/target/release"
fi
for b in sentio sentio-scheduler sentio-executor; do
  [ -x "$bin/$b" ] || { echo "release.sh: $bin/$b is missing" >&2; exit 1; }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/deploy"
cp "$bin/sentio" "$bin/sentio-scheduler" "$bin/sentio-executor" "$stage/bin/"
cp -r "$repo/deploy/systemd" "$repo/deploy/aws" "$stage/deploy/"
git -C "$repo" rev-parse HEAD >"$stage/REVISION" 2>/dev/null || echo unknown >"$stage/REVISION"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
tar -czf "$out.tmp" -C "$stage" .
mv "$out.tmp" "$out"
echo "wrote $out ($(du -h "$out" | cut -f1), revision $(cat "$stage/REVISION"))"

if [ -n "$upload" ]; then
  aws s3 cp "$out" "$upload"
fi
