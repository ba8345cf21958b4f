#!/usr/bin/env bash
# Installs Debian's chromium for the demo-page browser test, where it can (root with apt-get,
# as on CI). Elsewhere it says so and changes nothing: the browser test then fails with a
# message naming this script, unless BROKER_TESTS_NO_BROWSER=1 makes pytest skip it (the skip
# and its reason are printed in the summary).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: installing Debian's chromium package" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
    exit 0
fi
echo "install-chromium: cannot install chromium here (needs root and apt-get);" \
     "install /usr/bin/chromium yourself or set BROKER_TESTS_NO_BROWSER=1 to skip the browser test." >&2
