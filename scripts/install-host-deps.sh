#!/usr/bin/env bash
# Installs the Debian 12 host packages pyro needs. Idempotent.
set -euo pipefail
pkgs=(
  qemu-system-x86 qemu-utils      # the VMM and disk overlays
  mmdebstrap e2fsprogs            # environment images; debugfs for the offline disk tools
  linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev xz-utils cpio kmod  # guest kernel
  ca-certificates git jq          # jq: README examples read --json output
  iproute2                        # the network tests put an "outside" server in its own netns
  busybox-static                  # the OCI tests build busybox-only images from /bin/busybox
)
# The e2e tests drive pyro with the official TypeScript MCP client.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-host-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-host-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
