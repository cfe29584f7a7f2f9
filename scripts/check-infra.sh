#!/usr/bin/env bash
# Static checks of the Bicep under infra/ without a Bicep compiler (none runs offline here):
#   1. every infra/**/*.bicep must parse with pycep (the Bicep parser checkov uses);
#   2. checkov's Bicep policies must all pass (or be skipped in the file with
#      `// checkov:skip=CKV_...: reason` right above the resource);
#   3. every KQL query under infra/queries/ (the workbook's and the log alerts') must parse and
#      analyze cleanly against the Application Insights tables, with Kusto.Language, Microsoft's
#      KQL parser (scripts/check-kql.js), and every loadTextContent() path must exist.
# Installs its tools into target/infra-venv and target/kql-check (reused when the pinned versions
# are there); the KQL step needs Node.js and npm.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# checkov 3.3.30 pins pycep-parser 0.5.1 (it refuses pycep-parser 0.7.x).
CHECKOV_VERSION="3.3.30"
PYCEP_VERSION="0.5.1"
# Kusto.Language compiled to JavaScript (Microsoft's package; no dependencies).
KQL_PACKAGE="@kusto/language-service-next"
KQL_VERSION="12.4.1"
venv="$root/target/infra-venv"
python="${PYTHON:-python3}"

if ! "$venv/bin/python" -c "import sys" 2>/dev/null; then
  echo "check-infra: creating $venv"
  "$python" -m venv "$venv"
fi
have="$("$venv/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version
print(version("checkov"), version("pycep-parser"))
PY
)"
if [[ "$have" != "$CHECKOV_VERSION $PYCEP_VERSION" ]]; then
  echo "check-infra: installing checkov==$CHECKOV_VERSION pycep-parser==$PYCEP_VERSION"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "checkov==$CHECKOV_VERSION" "pycep-parser==$PYCEP_VERSION"
fi

mapfile -t files < <(find infra -type f -name '*.bicep' | sort)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "check-infra: no .bicep files under infra/" >&2
  exit 1
fi

echo "check-infra: parsing ${#files[@]} Bicep files with pycep"
"$venv/bin/python" - "${files[@]}" <<'PY'
import sys
from pathlib import Path

from pycep import BicepParser

# The same parser and options checkov uses; checkov itself silently skips a file it cannot
# parse, which is why this step exists.
parser = BicepParser(add_line_numbers=True)
failed = 0
for name in sys.argv[1:]:
    try:
        tree = parser.parse(text=Path(name).read_text(encoding="utf-8"))
    except Exception as exc:  # lark errors carry line and column
        failed += 1
        text = str(exc).strip()
        first = "\n    ".join(text.splitlines()[:6]) if text else type(exc).__name__
        print(f"  PARSE ERROR {name}: {type(exc).__name__}: {first}", file=sys.stderr)
        continue
    if not isinstance(tree, dict):
        failed += 1
        print(f"  PARSE ERROR {name}: no syntax tree", file=sys.stderr)
        continue
    print(f"  ok {name}")
sys.exit(1 if failed else 0)
PY

echo "check-infra: checkov (framework bicep)"
# --quiet prints only failed checks; checkov exits non-zero on any failed check.
"$venv/bin/checkov" -d infra --framework bicep --skip-download --quiet --compact

echo "check-infra: KQL (Kusto.Language $KQL_VERSION)"
kql="$root/target/kql-check"
installed="$(node -p "require('$kql/node_modules/$KQL_PACKAGE/package.json').version" 2>/dev/null || true)"
if [[ "$installed" != "$KQL_VERSION" ]]; then
  echo "check-infra: installing $KQL_PACKAGE@$KQL_VERSION"
  mkdir -p "$kql"
  npm install --prefix "$kql" --no-audit --no-fund --silent "$KQL_PACKAGE@$KQL_VERSION"
fi
node scripts/check-kql.js "$kql"
echo "check-infra: all Bicep files parse, every checkov check passed or is skipped with a reason, and every query analyzes cleanly"
