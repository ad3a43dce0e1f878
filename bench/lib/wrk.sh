# Sourced by bench/run and bench/compare: installs Debian's wrk when it is missing.
ensure_wrk() {
    command -v wrk >/dev/null && return
    echo "Installing wrk..." >&2
    local sudo=sudo
    [ "$(id -u)" -eq 0 ] && sudo=
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
}
