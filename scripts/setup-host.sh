#!/usr/bin/env bash
# Prepares a Debian host for tsvisor: enables the i386 package architecture (guest kernels and
# busybox are i386 packages, fetched with `apt-get download`, never installed) and installs the
# Debian tools the image builder and the test suite use. Idempotent; needs root (uses sudo if
# available when not root).
set -euo pipefail
SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "setup-host.sh: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
updated=0
# A mirror part-way through a sync can fail one index while the others update (apt-get exits 100
# for that); try once more, then go on with the lists it did fetch: a package that really cannot
# be had fails in apt-get install below, with apt's own message.
update() {
  [ "$updated" = 1 ] && return
  updated=1
  if ! $SUDO apt-get update -q >/dev/null; then
    sleep 5
    $SUDO apt-get update -q >/dev/null ||
      echo "setup-host.sh: apt-get update reported the errors above; going on with the lists it fetched" >&2
  fi
}
if ! dpkg --print-foreign-architectures | grep -qx i386; then
  $SUDO dpkg --add-architecture i386
  update
fi
if ! apt-cache show linux-image-686:i386 >/dev/null 2>&1; then update; fi
# dpkg-deb and apt-get come with Debian; cpio lists archives in tests; qemu-system-x86 and nasm
# drive the CPU's differential tests; xorriso, grub-pc-bin, isolinux and mtools build boot media;
# acpica-tools' iasl checks the generated ACPI tables.
pkgs=(cpio qemu-system-x86 nasm xorriso grub-pc-bin isolinux syslinux-common mtools binutils acpica-tools)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup-host: i386 multiarch enabled; ${#missing[@]} package(s) installed"
