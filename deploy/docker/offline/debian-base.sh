#!/bin/sh
# Builds a base image from Debian packages, for machines that reach Debian's packages and
# PyPI but no image registry. Usage: debian-base.sh TAG
#
# The image is bookworm minbase with Python 3.11, pip and the CA certificates, plus the
# machine's own extra CAs (/usr/local/share/ca-certificates, e.g. a TLS-intercepting
# egress proxy), so builds FROM it reach PyPI the way this machine does. Certificates
# are public; nothing secret goes in. Tests tag it with a hash of this file and the CAs
# (tests/docker_images.py), so it is rebuilt only when either changes.
set -eu
tag=${1:?usage: debian-base.sh TAG}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /var/tmp/tenantform-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -30 "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  -c 'CMD ["/bin/bash"]' \
  -m "bookworm minbase + python3, pip, CA certificates (deploy/docker/offline/debian-base.sh)" \
  - "$tag" >/dev/null
echo "$tag"
