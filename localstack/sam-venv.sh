# shellcheck shell=bash
# Sourced by sam.sh, deploy.sh and check.sh: installs the pinned SAM CLI and shellcheck
# (requirements-sam.txt) into $SAM_VENV (default <repo>/.local/sam-venv, git-ignored) when
# it is missing or the requirements changed, and sets $sam_venv to it. Idempotent: a
# second call costs one sha256sum.

ensure_sam_venv() {
  local here repo requirements stamp want
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  repo="$(cd "$here/.." && pwd)"
  sam_venv="${SAM_VENV:-$repo/.local/sam-venv}"
  requirements="$here/requirements-sam.txt"
  stamp="$sam_venv/.requirements.sha256"
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [[ ! -x "$sam_venv/bin/sam" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing the SAM CLI (requirements-sam.txt) into $sam_venv" >&2
    python3 -m venv "$sam_venv" >&2
    "$sam_venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$stamp"
  fi
  # The SAM CLI asks before sending telemetry; never in scripts.
  export SAM_CLI_TELEMETRY=0
}
