#!/bin/sh
# Build a local Python 3.11 base image from Debian packages, for machines that cannot pull one.
#
#   tests/docker/build_base_image.sh [TAG]     (default TAG: ember-base:bookworm)
#
# debootstrap puts a minimal Debian bookworm (which ships Python 3.11) in a directory, with
# python3, python3-venv (ensurepip, so the Dockerfile's build stage has pip) and ca-certificates;
# `docker import` turns that directory into an image. The project image is then built on it with
#   docker build --build-arg BASE_IMAGE=TAG -t ember:0.1.0 .
# An image with TAG already present is kept (delete it to rebuild). Needs root, debootstrap,
# docker and a reachable Debian mirror (DEBIAN_MIRROR, default deb.debian.org). The CAs added
# under /usr/local/share/ca-certificates here are trusted in the image as well.
set -eu

tag="${1:-ember-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already present"
    exit 0
fi
for tool in debootstrap docker; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

rootfs="$(mktemp -d /tmp/ember-base-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT INT TERM

echo "debootstrap bookworm into $rootfs (from $mirror)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror"

# Certificate authorities this machine's administrator added (a TLS-intercepting proxy's, on a
# build machine that reaches PyPI through one): trusted in the image too, or pip fails there.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates
fi

# What an image does not need: package lists and caches, docs and man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*

echo "docker import as $tag"
tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$tag"
