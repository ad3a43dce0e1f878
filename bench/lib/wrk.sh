# Sourced by bench/run and bench/compare: installs Debian's wrk when it is missing.
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/apt.sh"
ensure_wrk() {
    command -v wrk >/dev/null && return
    echo "Installing wrk..." >&2
    apt_install wrk
}
