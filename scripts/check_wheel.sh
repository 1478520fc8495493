#!/usr/bin/env bash
# Build the wheel, install it into a clean virtual environment without extras and check it
# (import, __version__, licence and URLs in the metadata, a SQLite round trip, no server driver,
# the missing-driver error naming the extra), then add [postgresql] and [mysql] one at a time,
# then [pydantic], [otel] and [fastapi] (each module refused with the extra's name before).
# With CHECK_WHEEL_SERVERS=1 (CI) each extra also makes a round trip to its server
# (LUCID_PG_URL, LUCID_MYSQL_URL). Usage: scripts/check_wheel.sh [python]
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${1:-python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export CHECK_WHEEL_TMP=$TMP

"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$TMP/dist" .
WHEEL=$(ls "$TMP"/dist/lucid_orm-*.whl)
echo "check_wheel: built $(basename "$WHEEL")"

"$PYTHON" -m venv "$TMP/venv"
VPY=$TMP/venv/bin/python
# Run from outside the checkout, so that `import lucid_orm` finds the installed wheel.
check() { (cd "$TMP" && "$VPY" "$OLDPWD/scripts/check_wheel.py" "$@"); }

"$VPY" -m pip install --quiet "$WHEEL"
footprint() {
    "$VPY" - "$@" <<'PY'
import importlib.metadata as m
import sys

dists = [d for d in m.distributions() if d.metadata["Name"].lower() not in ("pip", "setuptools")]
size = sum(
    d.locate_file(f).stat().st_size for d in dists for f in d.files or [] if d.locate_file(f).exists()
)
print(f"check_wheel: {sys.argv[1]}: {len(dists)} packages, {size / 1e6:.0f} MB installed")
PY
}

"$VPY" -m pip install --quiet "$WHEEL"
footprint "pip install lucid-orm"
check

"$VPY" -m pip install --quiet "$WHEEL[postgresql]"
footprint "with [postgresql]"
check postgresql

"$VPY" -m pip install --quiet "$WHEEL[mysql]"
footprint "with [postgresql] and [mysql]"
check postgresql mysql

# The integration extras, one at a time: refused with the extra's name before, imported after.
for extra in pydantic otel fastapi; do
    check --integration "$extra" missing
    "$VPY" -m pip install --quiet "$WHEEL[$extra]"
    check --integration "$extra" installed
done
footprint "with every extra"
