#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/browser/).
# Playwright drives this system browser (playwright-core, executablePath
# /usr/bin/chromium) because its own browser downloads need a CDN we may not reach.
# Set CHROMIUM to test with a browser somewhere else.
set -euo pipefail

browser="${CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$browser" ]]; then
  exit 0
fi
if [[ -n "${CHROMIUM:-}" ]]; then
  echo "error: CHROMIUM=$CHROMIUM is not an executable file" >&2
  exit 1
fi

packages=(chromium fonts-dejavu-core)
echo "installing the browser for tests/browser: ${packages[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
  else
    echo "error: the browser tests need $browser and cannot install it without root;" >&2
    echo "install Debian's ${packages[*]} (apt-get install chromium), or set CHROMIUM" >&2
    echo "to a Chromium/Chrome executable" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here: install Chromium yourself and set CHROMIUM to its executable" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
if [[ ! -x "$browser" ]]; then
  echo "error: installed ${packages[*]} but $browser is still missing" >&2
  exit 1
fi
echo "installed $("$browser" --version 2>/dev/null || echo "$browser")"
