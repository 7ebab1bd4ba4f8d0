#!/usr/bin/env bash
# Installs the Debian packages tokr's tests need (run as root on Debian 12).
# Mesa's lavapipe (CPU Vulkan) from <codename>-backports gives Dawn (npm `webgpu`) a WebGPU adapter;
# Debian 12's own Mesa 22 does not. The backports source is derived from the system's own
# debian.sources (first stanza, Suites changed) so that no mirror is named here.
# libonnx-testdata (ONNX's node test cases, for test/onnx/conformance.test.ts) comes from the normal suite.
# chromium (test/runtime/browser.test.ts: headless, WebGPU on its bundled SwiftShader) too.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
. /etc/os-release
codename=${VERSION_CODENAME:-bookworm}
src=/etc/apt/sources.list.d/debian.sources
dst=/etc/apt/sources.list.d/tokr-backports.sources
if [ ! -f "$dst" ] && [ -f "$src" ]; then
  awk -v suite="${codename}-backports" '
    /^[[:space:]]*$/ { exit }
    /^Suites:/ { print "Suites: " suite; next }
    { print }
  ' "$src" > "$dst"
fi
apt-get update -qq
apt-get install -y -qq libonnx-testdata chromium > /dev/null
pkgs=(libvulkan1 mesa-vulkan-drivers)
if [ -f "$dst" ]; then
  apt-get install -y -qq -t "${codename}-backports" "${pkgs[@]}" > /dev/null
else
  apt-get install -y -qq "${pkgs[@]}" > /dev/null
fi
dpkg-query -W -f='${Package} ${Version}\n' mesa-vulkan-drivers chromium
