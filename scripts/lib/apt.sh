# Sourced by the scripts that install what a clean Debian machine lacks: one way to install
# Debian's packages, as root or through sudo.

# Installs Debian's PACKAGEs, reading the package lists first: a fresh machine (or image) has
# none, and `apt-get install` alone then finds nothing. `env` carries DEBIAN_FRONTEND through
# sudo, which resets the environment (so sudo must allow `env`, not only `apt-get`).
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || {
            echo "error: installing $* needs root or sudo; install it and run again" >&2
            exit 1
        }
        sudo="sudo"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null
}
