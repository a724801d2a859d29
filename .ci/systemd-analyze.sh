# Sourced by the .ci scripts that check the systemd units: makes sure systemd-analyze
# is there. Missing, it is installed with apt-get (package systemd) when running as
# root or with password-less sudo; otherwise the check fails under CI ($CI set) and is
# skipped, with a warning, on a developer's machine.
need_systemd_analyze() {  # $1: the calling script's name
    command -v systemd-analyze >/dev/null && return 0
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
    fi
    if [ "$sudo" != none ] && command -v apt-get >/dev/null; then
        echo "$1: systemd-analyze is missing; installing the systemd package" >&2
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >&2
        command -v systemd-analyze >/dev/null && return 0
    fi
    if [ -n "${CI:-}" ]; then
        echo "$1: systemd-analyze is missing and could not be installed (apt-get install systemd)" >&2
        exit 1
    fi
    echo "$1: WARNING: systemd-analyze is missing (apt-get install systemd); not checked" >&2
    exit 0
}

# The units with their programs pointed at this checkout's virtual environment (verify
# insists that ExecStart exists), written into the directory $1.
units_for_checkout() {
    local unit
    for unit in systemd/sluiced.service systemd/sluiced.socket; do
        sed "s#/opt/sluiced/bin/#$PWD/.venv/bin/#g" "$unit" > "$1/$(basename "$unit")"
    done
}
