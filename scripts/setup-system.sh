#!/usr/bin/env bash
# System packages the pipeline's report stage and its tests use: headless Chromium prints the
# report to PDF and renders it in the browser tests; poppler-utils checks the PDF's pages.
# Installs them with apt-get when missing (needs root or sudo); otherwise says what to install.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "setup-system: please install: ${need[*]} (Debian/Ubuntu: apt-get install ${need[*]})" >&2
  exit 0
fi
echo "setup-system: installing ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
