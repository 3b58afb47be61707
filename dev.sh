#!/usr/bin/env bash
# Set up everything napari-ozx needs on a Debian machine, then run one job:
#   bash dev.sh demo   write a sample .ozx and open it in napari (headless: Xvfb + screenshot)
#   bash dev.sh test   run the whole test suite
#   bash dev.sh bench  run the benchmarks (see benchmarks/README.md)
#   bash dev.sh setup  only set up
# Idempotent: a second run reuses .venv and skips what is installed.
set -euo pipefail
cd "$(dirname "$0")"
job="${1:-demo}"; shift || true

PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
# The pins CI tests against; CONSTRAINTS= (empty) installs the newest releases instead (.ci/run's
# second run does, in its own VENV).
CONSTRAINTS="${CONSTRAINTS-.ci/constraints.txt}"
APT_PKGS=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
          libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0
          libxcb-cursor0 libgl1 libegl1 libfontconfig1 libdbus-1-3 zip unzip p7zip-full)

install_system() {
  local missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  "$PY" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
  [ ${#missing[@]} -eq 0 ] && return 0
  local SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "dev.sh: installing Debian packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed"
  local pins=()
  [ -n "$CONSTRAINTS" ] && pins=(-c "$CONSTRAINTS")
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ .ci/constraints.txt -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${pins[@]}" -e ".[dev]"
    touch "$stamp"
  fi
}

install_system
install_python
export PATH="$PWD/$VENV/bin:$PATH"
# PyQt6 is the Qt the dev extra installs. A venv made before it also holds PyQt5, which qtpy
# (napari's Qt layer) would pick first while pytest-qt picks PyQt6: name one for both.
# QT_API=pyqt5 bash dev.sh test runs everything on PyQt5 (pip install -e ".[qt5]" first).
export QT_API="${QT_API:-pyqt6}"
export PYTEST_QT_API="${PYTEST_QT_API:-$QT_API}"

case "$job" in
  setup) ;;
  demo)
    exec "$VENV/bin/napari-ozx" demo "$@" ;;
  test)
    exec "$VENV/bin/python" -m pytest "$@" ;;
  bench)
    exec "$VENV/bin/python" benchmarks/run.py "$@" ;;
  *)
    echo "usage: bash dev.sh [demo|test|bench|setup] [args...]" >&2; exit 2 ;;
esac
