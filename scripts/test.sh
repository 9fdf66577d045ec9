#!/usr/bin/env bash
# Install the project with its test extra into .venv and run the test suite.
# This is the README's test command; .ci/run calls it too.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# The report's browser tests need a real headless browser: install Debian's
# chromium once, when it is missing (needs root and the package mirror; the
# browser tests skip with the reason when it still is not there).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
        || echo "scripts/test.sh: could not install chromium; browser tests will skip" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
