#!/usr/bin/env python3
"""Import circles between the modules of each crate, and the largest source files.

    scripts/module-graph.py            report every crate's circles and the 12 largest files
    scripts/module-graph.py --check    exit 1 if any crate of the workspace has an import circle

A module's dependencies are the `crate::<module>` paths its files name (a folder module counts
as one). The domain crate reads bottom-up (ids and parameters, then the job, then what is built
on it), the stages crate from its ports to each stage, the chain crate from its transaction
module to the minters, the CLI from its wiring to each subcommand: CI refuses a circle in any
of them. The others are reported only (the engine's pipeline and its worker thread still
call each other).
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def graph(src: Path) -> dict[str, set[str]]:
    mods: dict[str, set[str]] = {}
    for f in src.rglob("*.rs"):
        rel = f.relative_to(src).parts
        name = rel[0].removesuffix(".rs")
        if name in ("lib", "main", "bin"):
            continue
        text = f.read_text()
        mods.setdefault(name, set()).update(re.findall(r"crate::([a-z_][a-z0-9_]*)", text))
    return {m: {d for d in deps if d in mods and d != m} for m, deps in mods.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    check = "--check" in sys.argv
    crates = sorted(p.parent for p in ROOT.glob("functions/*/src")) + [ROOT / "tui"]
    failed = False
    for crate in crates:
        src = crate / "src" if (crate / "src").is_dir() else crate
        found = circles(graph(src))
        rel = crate.relative_to(ROOT).as_posix()
        print(f"{rel}: " + ("no import circles" if not found else "circles: " + "; ".join(" <-> ".join(c) for c in found)))
        failed |= bool(found)
    if not check:
        files = [p for p in ROOT.glob("functions/*/src/**/*.rs")] + list(ROOT.glob("tui/src/**/*.rs"))
        sized = sorted(((sum(1 for _ in p.open()), p.relative_to(ROOT).as_posix()) for p in files), reverse=True)
        print("\nlargest source files (lines):")
        for lines, path in sized[:12]:
            print(f"{lines:6} {path}")
    if failed:
        print("a crate has an import circle: move the shared type down a layer (see docs/architecture.md)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
