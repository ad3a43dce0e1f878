# Sourced by scripts that run Python tools from PyPI (check-deploy, check-openapi).

# pytools_venv NAME REQUIREMENTS: prints the path of a virtualenv under ~/.cache that holds
# exactly the pinned REQUIREMENTS. It is made again from nothing whenever the file changes (a
# stamp named after the file's digest says what was installed), so that an upgrade never
# leaves an older tool's packages beside the new one's.
pytools_venv() {
    local name=$1 requirements=$2 tools stamp
    tools=${XDG_CACHE_HOME:-$HOME/.cache}/idnow-attempts/$name
    stamp="$tools/installed-$(sha256sum "$requirements" | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        echo "Installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $tools..." >&2
        # Each step checked: `set -e` does not reach into the $(...) callers use.
        rm -rf "$tools" &&
            python3 -m venv "$tools" &&
            "$tools/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2 &&
            touch "$stamp" || return 1
    fi
    echo "$tools"
}
