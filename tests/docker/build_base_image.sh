#!/bin/sh
# Build a local Python 3.11 base image from Debian packages, for machines that cannot pull one.
#
#   tests/docker/build_base_image.sh [TAG]        (default TAG: ember-base:bookworm)
#   tests/docker/build_base_image.sh --mirror     (print the Debian mirror it would use, and exit)
#
# debootstrap puts a minimal Debian bookworm (which ships Python 3.11) in a directory, with
# python3, python3-venv (ensurepip, so the Dockerfile's build stage has pip) and ca-certificates;
# `docker import` turns that directory into an image. The project image is then built on it with
#   docker build --build-arg BASE_IMAGE=TAG -t ember:0.1.0 .
# An image with TAG already present is kept (delete it to rebuild). Needs root, debootstrap,
# docker and a Debian mirror: DEBIAN_MIRROR when set, otherwise the one this machine's own apt
# sources name (a machine behind a mirror or a caching proxy then uses that one too). The CAs
# added under /usr/local/share/ca-certificates here are trusted in the image as well.
set -eu

suite=bookworm
apt_etc="${APT_ETC:-/etc/apt}"  # where apt's configuration lives (tests point it elsewhere)

# One "URI SUITE" line per `deb` entry of apt's sources: the one-line format of sources.list and
# sources.list.d/*.list ("deb [options] URI suite components"), and the deb822 stanzas of
# sources.list.d/*.sources (Types/URIs/Suites fields, several values each; Enabled: no skips one).
apt_sources() {
    for file in "$apt_etc/sources.list" "$apt_etc"/sources.list.d/*.list; do
        [ -r "$file" ] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$file" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
    done
    for file in "$apt_etc"/sources.list.d/*.sources; do
        [ -r "$file" ] || continue
        awk '
            function flush(   n, m, i, j, u, s) {
                if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                    n = split(uris, u, " "); m = split(suites, s, " ")
                    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j]
                }
                types = ""; uris = ""; suites = ""; enabled = ""; key = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ {  # a continuation line of the field before
                if (key == "uris") uris = uris " " $0
                else if (key == "suites") suites = suites " " $0
                else if (key == "types") types = types " " $0
                next
            }
            {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                value = substr($0, index($0, ":") + 1)
                if (key == "uris") uris = value
                else if (key == "suites") suites = value
                else if (key == "types") types = value
                else if (key == "enabled") { enabled = tolower(value); gsub(/[ \t]/, "", enabled) }
            }
            END { flush() }
        ' "$file"
    done
}

# The mirror to bootstrap from: DEBIAN_MIRROR; else an apt source serving this suite; else, on
# a Debian machine, the one serving its own release (any Debian mirror has every release).
# URIs debootstrap cannot fetch from (apt's mirror+ and cdrom methods) are passed over.
find_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    sources="$(apt_sources | awk '$1 ~ /^(https?|ftp|file):/')"
    found="$(echo "$sources" | awk -v suite="$suite" '$2 == suite { print $1; exit }')"
    if [ -z "$found" ] && grep -qs '^ID=debian$' "${OS_RELEASE:-/etc/os-release}"; then
        found="$(echo "$sources" | awk '$2 !~ /[-\/]/ { print $1; exit }')"
    fi
    if [ -z "$found" ]; then
        echo "no Debian mirror for $suite in the apt sources under $apt_etc: set DEBIAN_MIRROR" \
            "to one (its URL, e.g. the URI of a deb line that serves Debian)" >&2
        exit 2
    fi
    echo "$found"
}

if [ "${1:-}" = "--mirror" ]; then
    find_mirror
    exit 0
fi

tag="${1:-ember-base:bookworm}"

if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already present"
    exit 0
fi
for tool in debootstrap docker; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
mirror="$(find_mirror)"

rootfs="$(mktemp -d /tmp/ember-base-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT INT TERM

echo "debootstrap $suite into $rootfs (from $mirror)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$rootfs" "$mirror"

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
