#!/usr/bin/env bash
# Headless Chromium and ChromeDriver for the HTML report test (Debian packages chromium and
# chromium-driver), installed where missing. Where they cannot be installed (no root, no apt),
# say so: the browser test then skips with that reason, visibly.
set -uo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends chromium chromium-driver >/tmp/capacity-apt.log 2>&1; then
    apt-get update -q >>/tmp/capacity-apt.log 2>&1
    apt-get install -y -q --no-install-recommends chromium chromium-driver >>/tmp/capacity-apt.log 2>&1 \
      || echo "scripts/browser.sh: could not install chromium (see /tmp/capacity-apt.log); the browser test will skip"
  fi
else
  echo "scripts/browser.sh: chromium is missing and cannot be installed here (needs root and apt-get)"
fi
exit 0
