"""Structure limits of the Rust code in crates/ and handlers/ (scripts/checks/05-structure.sh).

- no source file over MAX_FILE_LINES lines;
- no function over MAX_FN_LINES lines (test code aside: files under tests/, examples/, benches/
  and `#[cfg(test)]` modules);
- no import cycle between sibling modules of a crate (`use crate::a` in b and `use crate::b`
  in a, directly or through other siblings); a module and its own parent or children do not
  count, since a parent re-exporting its children is the ordinary shape.

Prints one line per finding and exits 1 when there is any, 0 otherwise.

    python3 scripts/checks/structure.py [ROOT]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_FILE_LINES = 1000
MAX_FN_LINES = 150
TEST_DIRS = {"tests", "examples", "benches"}

FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")
CFG_TEST_RE = re.compile(r"^\s*#\[cfg\(test\)\]")
GROUP_RE = re.compile(r"\b(crate|super|self)::\{([^{}]*)\}")
PATH_RE = re.compile(r"\b(crate|super|self)((?:::\w+)+)")


def strip_line(line: str, state: dict) -> str:
    """Removes comments, string and char literals from one line (state carries block comments
    and multi-line strings across lines), so that braces are counted on code alone."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if state["block"]:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out)
            state["block"] = False
            i = end + 2
            continue
        if state["raw"] is not None:
            end = line.find(state["raw"], i)
            if end < 0:
                return "".join(out)
            i = end + len(state["raw"])
            state["raw"] = None
            continue
        if state["str"]:
            while i < n:
                if line[i] == "\\":
                    i += 2
                    continue
                if line[i] == '"':
                    state["str"] = False
                    i += 1
                    break
                i += 1
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        m = re.match(r'b?r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state["raw"] = '"' + m.group(1)
            i += len(m.group(0))
            continue
        if c == '"':
            state["str"] = True
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'])'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def code_lines(text: str) -> list[str]:
    state = {"block": False, "raw": None, "str": False}
    return [strip_line(line, state) for line in text.splitlines()]


def long_functions(path: Path, lines: list[str]) -> list[str]:
    findings = []
    depth = 0
    test_depth = None  # brace depth at which a #[cfg(test)] item opened
    pending_test = False
    open_fns: list[tuple[str, int, int]] = []  # (name, start line, depth before its body)
    waiting_fn: tuple[str, int] | None = None
    for number, line in enumerate(lines, 1):
        if CFG_TEST_RE.match(line):
            pending_test = True
        m = FN_RE.match(line)
        if m and test_depth is None:
            waiting_fn = (m.group(7), number)
        for c in line:
            if c == "{":
                if pending_test and test_depth is None:
                    test_depth = depth
                    pending_test = False
                if waiting_fn is not None:
                    open_fns.append((waiting_fn[0], waiting_fn[1], depth))
                    waiting_fn = None
                depth += 1
            elif c == "}":
                depth -= 1
                if open_fns and open_fns[-1][2] == depth:
                    name, start, _ = open_fns.pop()
                    length = number - start + 1
                    if length > MAX_FN_LINES:
                        findings.append(f"{path}:{start}: fn {name} has {length} lines (limit {MAX_FN_LINES})")
                if test_depth is not None and depth == test_depth:
                    test_depth = None
            elif c == ";" and waiting_fn is not None:
                waiting_fn = None  # a declaration without a body (a trait method)
        if pending_test and line.strip().endswith(";"):
            pending_test = False
    return findings


def module_of(src: Path, file: Path) -> tuple[str, ...]:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def cycles(crate: Path) -> list[str]:
    src = crate / "src"
    if not src.is_dir():
        return []
    files = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts[:1]]
    modules = {module_of(src, f): f for f in files}
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in modules}
    for module, file in modules.items():
        text = "\n".join(code_lines(file.read_text(encoding="utf-8")))
        # Drop test modules: a test may reach anywhere.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+", text)[0]
        # `use crate::{a::X, b}` names a and b: expand one level of braces first.
        text = GROUP_RE.sub(
            lambda g: " ".join(f"{g.group(1)}::{part.strip()}" for part in g.group(2).split(",")),
            text,
        )
        for m in PATH_RE.finditer(text):
            head, rest = m.group(1), [p for p in m.group(2).split("::") if p]
            base = {"crate": [], "super": list(module[:-1]), "self": list(module)}[head]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
            path = base + rest
            # Longest prefix that is a module.
            target = None
            for k in range(len(path), -1, -1):
                if tuple(path[:k]) in modules:
                    target = tuple(path[:k])
                    break
            if target is None or target == module:
                continue
            # Only siblings (same parent): a parent and its descendants do not count.
            common = 0
            while common < min(len(module), len(target)) and module[common] == target[common]:
                common += 1
            if common == len(module) or common == len(target):
                continue
            a, b = module[: common + 1], target[: common + 1]
            if a != b:
                edges.setdefault(a, set()).add(b)
    findings = []
    seen_cycles = set()
    for start in sorted(edges):
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    cyc = tuple(sorted(path))
                    if cyc not in seen_cycles:
                        seen_cycles.add(cyc)
                        shown = " -> ".join("::".join(p) or "crate" for p in path + [start])
                        findings.append(f"{crate}: module cycle {shown}")
                elif nxt not in path and len(path) < 8:
                    stack.append((nxt, path + [nxt]))
    return findings


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    findings: list[str] = []
    crates = sorted(p.parent for p in root.glob("crates/*/Cargo.toml")) + sorted(
        p.parent for p in root.glob("handlers/*/Cargo.toml")
    )
    for crate in crates:
        for file in sorted(crate.rglob("*.rs")):
            if "target" in file.parts:
                continue
            rel = file.relative_to(root)
            text = file.read_text(encoding="utf-8")
            count = text.count("\n")
            if count > MAX_FILE_LINES:
                findings.append(f"{rel}: {count} lines (limit {MAX_FILE_LINES})")
            if TEST_DIRS & set(file.relative_to(crate).parts):
                continue
            findings += long_functions(rel, code_lines(text))
        findings += [f.replace(str(crate), str(crate.relative_to(root)), 1) for f in cycles(crate)]
    for f in findings:
        print(f)
    print(f"structure: {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
