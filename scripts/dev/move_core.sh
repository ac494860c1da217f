#!/usr/bin/env bash
# Issue 13 §4: move the core (the modules every layer imports) into relance/core/ and rewrite every
# import of them. Idempotent: on a checkout already moved it changes nothing.
#
#   bash scripts/dev/move_core.sh [REPO]        (REPO: the checkout, default: this one)
#
# What it does, on any checkout (after merges too):
#   1. `git mv relance/<m>.py relance/core/<m>.py` for every module of relance/ except the app
#      (cli, preview, sample_data, __init__, __main__; APP_MODULES="..." adds others). A module that
#      imports tasks/flows or the app is left in place, with a warning: it is not core.
#   2. relance/__init__.py keeps its docstring and __version__ only; the paths it defined (ROOT,
#      SQL_DIR, TEMPLATES_DIR, DEFAULT_POLICY, any other) go to relance/core/paths.py.
#   3. Rewrites, in every tracked or new text file (py, md, toml, yaml, sh, sql, cfg, Makefile...):
#        from relance.<m> import x      → from relance.core.<m> import x   (any dotted relance.<m>)
#        from relance import <m>, ROOT  → from relance.core import <m> / from relance.core.paths import ROOT
#        relance/<m>.py                 → relance/core/<m>.py               (docs, comments)
#      and adds "relance.core" to [tool.setuptools] packages when that list is explicit.
# Then: `make install` (the package list changed) and `ruff check --fix` sorts the imports it wrote
# (scripts/dev/format_all.sh).
set -euo pipefail
REPO="${1:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)}"
cd "$REPO"
test -d relance && test -d tasks || { echo "move_core: $REPO is not a relance checkout" >&2; exit 1; }
APP_MODULES="cli preview sample_data __init__ __main__ ${APP_MODULES:-}"
PY="$(command -v python3.11 || command -v python3)"

mkdir -p relance/core
for f in relance/*.py; do
    m="$(basename "$f" .py)"
    case " $APP_MODULES " in *" $m "*) continue ;; esac
    if grep -Eq '^\s*(from|import)\s+(tasks|flows)\b|relance\.(cli|preview|sample_data)\b' "$f"; then
        echo "move_core: WARNING: relance/$m.py imports tasks/flows/the app: not core, left in place" >&2
        continue
    fi
    if [ -e "relance/core/$m.py" ]; then
        echo "move_core: relance/core/$m.py exists already; relance/$m.py left alone" >&2
        continue
    fi
    git mv "$f" "relance/core/$m.py"
    echo "move_core: relance/$m.py -> relance/core/$m.py"
done

"$PY" - <<'PYEOF'
import ast
import re
import subprocess
from pathlib import Path

core = Path("relance/core")
init = Path("relance/__init__.py")
paths = core / "paths.py"

# 2. relance/__init__.py: docstring and __version__ only; the rest goes to relance/core/paths.py.
src = init.read_text(encoding="utf-8")
tree = ast.parse(src)
lines = src.splitlines(keepends=True)
keep_names = {"__version__", "__all__"}
moved_stmts = []
for node in tree.body:
    if isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant) and node is tree.body[0]:
        continue  # the docstring
    targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        targets = [node.target.id]
    if targets and set(targets) <= keep_names:
        continue
    moved_stmts.append(node)
if moved_stmts:
    docstring = ast.get_docstring(tree)
    version = next((ast.get_source_segment(src, n) for n in tree.body
                    if any(isinstance(t, ast.Name) and t.id == "__version__" for t in getattr(n, "targets", []))), None)
    body_start = tree.body[1].lineno - 1 if docstring else 0
    rest = []
    for i, line in enumerate(lines[body_start:], start=body_start + 1):
        if version and line.startswith("__version__"):
            continue
        rest.append(line)
    text = "".join(rest).strip("\n") + "\n"
    text = text.replace("Path(__file__).resolve().parent.parent", "Path(__file__).resolve().parents[2]")
    text = text.replace("Path(__file__).parent.parent", "Path(__file__).resolve().parents[2]")
    if paths.exists():
        print("move_core: WARNING: relance/core/paths.py exists; relance/__init__.py's definitions appended")
        text = paths.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + text
    else:
        text = ('"""Where relance finds its files: the checkout\'s root, with sql/, templates/ and policies/ beside\n'
                'the Python packages."""\n\n' + text)
    paths.write_text(text, encoding="utf-8")
    new_init = ('"""' + (docstring or "relance") + '"""\n\n') + (version + "\n" if version else "")
    init.write_text(new_init, encoding="utf-8")
    print("move_core: relance/__init__.py's paths -> relance/core/paths.py")
if not (core / "__init__.py").exists():
    (core / "__init__.py").write_text(
        '"""The core: errors, dates, policy, settings, URLs, phones, paths, the checkout — what every layer\n'
        'uses. It imports nothing of relance\'s other packages (tasks, flows, the CLI): the import-linter\n'
        'contract in pyproject.toml holds the direction (tests/test_layers.py)."""\n', encoding="utf-8")
    print("move_core: relance/core/__init__.py written")
subprocess.run(["git", "add", "relance/__init__.py", "relance/core"], check=True)

# 3. The rewrite.
modules = sorted(p.stem for p in core.glob("*.py") if p.stem not in ("__init__", "paths"))
constants = set()
if paths.exists():
    for node in ast.parse(paths.read_text(encoding="utf-8")).body:
        for t in getattr(node, "targets", []) + ([node.target] if isinstance(node, ast.AnnAssign) else []):
            if isinstance(t, ast.Name):
                constants.add(t.id)
mods = "|".join(map(re.escape, modules + ["paths"]))
dotted = re.compile(rf"(?<![\w.])relance\.({mods})\b")
slashed = re.compile(rf"(?<![\w./])relance/({mods})\.py\b")
from_relance = re.compile(r"^([ \t]*)from relance import (\([^)]*\)|[^\n]*)$", re.M)


def split_from(m: re.Match) -> str:
    indent, names = m.group(1), m.group(2)
    comment = ""
    if not names.startswith("(") and "#" in names:
        names, comment = names.split("#", 1)
        comment = "  #" + comment
    parts = [n.strip() for n in names.strip().strip("()").replace("\n", " ").split(",")]
    parts = [p for p in parts if p and not p.startswith("#")]
    groups: dict[str, list[str]] = {"relance.core": [], "relance.core.paths": [], "relance": []}
    for p in parts:
        name = p.split(" as ")[0].strip()
        key = "relance.core" if name in modules else "relance.core.paths" if name in constants else "relance"
        groups[key].append(p)
    if not groups["relance.core"] and not groups["relance.core.paths"]:
        return m.group(0)
    out = [f"{indent}from {k} import {', '.join(v)}" for k, v in groups.items() if v]
    out[0] += comment
    return "\n".join(out)


SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".sh", ".sql", ".cfg", ".ini", ".txt", ".j2", ".html", ".rst"}
NAMES = {"Makefile", ".importlinter", ".sqlfluff"}
SKIP = {"scripts/dev/move_core.sh"}
files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], check=True, capture_output=True,
                       text=True).stdout.splitlines()
changed = []
for f in files:
    p = Path(f)
    if f in SKIP or not p.is_file() or (p.suffix not in SUFFIXES and p.name not in NAMES):
        continue
    if f.startswith(("bench/.cache/", ".venv/")):
        continue
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        continue
    new = text
    if p.suffix == ".py":
        new = from_relance.sub(split_from, new)
    new = dotted.sub(r"relance.core.\1", new)
    new = slashed.sub(r"relance/core/\1.py", new)
    if p.name == "pyproject.toml":
        new = re.sub(r'(?m)^(packages = \[)"relance",(?! "relance\.core")', r'\1"relance", "relance.core",', new)
    if new != text:
        p.write_text(new, encoding="utf-8")
        changed.append(f)
print(f"move_core: imports rewritten in {len(changed)} files" + (": " + ", ".join(changed) if changed else ""))

# What a regex cannot see: `import relance` then relance.ROOT, relance.errors...
left = subprocess.run(["git", "grep", "-nE", r"(^|[^\w.])relance\.(" + "|".join(sorted(constants)) + r")\b|^\s*import relance\s*$",
                       "--", "*.py"], capture_output=True, text=True).stdout
if left.strip():
    print("move_core: WARNING: check these by hand:\n" + left)
PYEOF
