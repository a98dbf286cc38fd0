# shellcheck shell=bash
# Sourced by sam.sh, deploy.sh, check.sh and ministack-deploy.sh: pinned Python tools in
# git-ignored virtualenvs under <repo>/.local, (re)installed when missing or when their
# requirements file changed. Idempotent: a second call costs one sha256sum.

# ensure_venv VENV REQUIREMENTS PROGRAM: installs REQUIREMENTS into VENV unless VENV/bin/PROGRAM
# exists and the requirements are the ones it was made from.
ensure_venv() {
  local venv="$1" requirements="$2" program="$3" stamp want
  stamp="$venv/.requirements.sha256"
  want="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [[ ! -x "$venv/bin/$program" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "installing $(basename "$requirements") into $venv" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$stamp"
  fi
}

# ensure_sam_venv: the pinned SAM CLI and shellcheck (requirements-sam.txt) in $SAM_VENV
# (default .local/sam-venv); sets $sam_venv to it.
ensure_sam_venv() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  sam_venv="${SAM_VENV:-$(cd "$here/.." && pwd)/.local/sam-venv}"
  ensure_venv "$sam_venv" "$here/requirements-sam.txt" sam
  # The SAM CLI asks before sending telemetry; never in scripts.
  export SAM_CLI_TELEMETRY=0
}
