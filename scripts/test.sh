#!/usr/bin/env bash
# Install the project with its test extra into .venv and run the test suite.
# This is the README's test command; .ci/run calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,dask]'
# System packages some tests need, installed once when missing (root and
# Debian's mirror needed; without them those tests skip with the reason):
# chromium for the report's browser tests, nftables for --net netns, fuse3 for
# the lazy file system (lose-unsynced), libfaketime for clock faults.
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v fusermount3 >/dev/null 2>&1 || missing="$missing fuse3"
dpkg -s libfuse3-3 >/dev/null 2>&1 || missing="$missing libfuse3-3"
dpkg -s libfaketime >/dev/null 2>&1 || missing="$missing libfaketime"
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing) >/dev/null 2>&1 \
        || echo "scripts/test.sh: could not install$missing; the tests that need them will skip" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
