#!/usr/bin/env bash
# dfpipe's one entry point for a fresh machine: it installs what is missing, then runs.
#   ./run.sh demo [ARGS]   the main job: build the demo corpus, run the demo study, report
#   ./run.sh test [ARGS]   the test suite (pytest ARGS; two workers, DFPIPE_TEST_WORKERS=N to change)
#   ./run.sh dfpipe ARGS   any dfpipe command inside the project's environment
# Set-up is idempotent: system packages only when missing, the virtual environment only
# when pyproject.toml changed since the last install (a stamp file records its hash).
set -euo pipefail
cd "$(dirname "$0")"

VENV="${DFPIPE_VENV:-.venv}"
# Debian packages: ffmpeg for the conditions, the rest are the demo corpus' sources
# (real speech: Asterisk prompts, pocketsphinx LibriVox utterances; speech generators).
APT_PACKAGES=(ffmpeg espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
  festvox-italp16k festvox-itapc16k festvox-ru flite
  asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722 asterisk-core-sounds-fr-g722
  asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722 pocketsphinx-testdata)

log() { printf '[run.sh] %s\n' "$*" >&2; }

ensure_system_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing system packages: ${missing[*]}"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
  local stamp="$VENV/.dfpipe-installed" want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "creating the Python environment in $VENV (first run: a few minutes, torch is large)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e '.[dev,demo]'
  echo "$want" > "$stamp"
}

export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.cache/prefect}"
mkdir -p "$PREFECT_HOME"  # Prefect creates its home folder but not the parents
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

cmd="${1:-help}"; shift || true
case "$cmd" in
  demo)   ensure_system_packages; ensure_venv; exec "$VENV/bin/dfpipe" demo "$@" ;;
  # Two pytest workers, whole files each (module fixtures built once): the long end-to-end
  # files then overlap the rest. DFPIPE_TEST_WORKERS=0 runs in one process.
  test)   ensure_system_packages; ensure_venv
          exec "$VENV/bin/python" -m pytest -n "${DFPIPE_TEST_WORKERS:-2}" --dist loadfile "$@" ;;
  dfpipe) ensure_system_packages; ensure_venv; exec "$VENV/bin/dfpipe" "$@" ;;
  setup)  ensure_system_packages; ensure_venv; log "ready: $VENV/bin/dfpipe" ;;
  *) sed -n '2,5p' "$0"; exit 2 ;;
esac
