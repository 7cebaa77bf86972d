#!/usr/bin/env python3
"""Which file of a Rust module directory uses items of which sibling, and whether that graph
has a cycle.

    scripts/check-modules.py worker/src/model/adapter worker/src/fleet

For each directory (a module: `dir/mod.rs`, or `dir.rs` beside it, or the crate's `lib.rs` /
`main.rs`) the nodes are its module file and its child modules (a child `x` is `x.rs` or `x/mod.rs`
together with every file under `x/`). An edge A -> B means a file of A names an item of B:

- through a `use` declaration (`pub use`, `pub(crate) use`, groups nested to any depth, `self`,
  `as`, globs), or a path in code (`super::x::f()`, `crate::a::b::T`, `self::x::T`, and in the
  module file `child::f()`), resolved from the file's module (inline `mod tests { .. }` count);
- a name used through the module file (`use super::Name`) is an edge to the module file when
  the module file defines `Name` (or imports it from outside the directory), and an edge to the
  child it comes from when the module file only re-exports it (`pub use child::Name`);
- the module file's `mod child;` alone is no edge; its `use child::..` (re-exports included) is.

Comments, strings and char literals are skipped. It prints each directory's edges and every
cycle, and exits 1 if any directory has a cycle (2 on a usage error). Python 3 stdlib only; it
reads the source, it does not expand macros or follow `#[path]` attributes (it warns of those).
"""

import os
import re
import sys
from collections import defaultdict, deque

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
KEYWORDS_NOT_NAMES = {"fn", "unsafe", "async", "extern"}
INLINE = "<inline>"


LEX = re.compile(
    r"""(?P<line>//[^\n]*)
      | (?P<block>/\*)
      | (?P<raw>[bc]?r(?P<hashes>\#*)")
      | (?P<str>[bc]?"(?:\\.|[^"\\])*")
      | (?P<char>b?'(?:\\(?:u\{[0-9A-Fa-f]*\}|x[0-9A-Fa-f]{2}|.)|[^\\'])')
      | (?P<word>[A-Za-z0-9_]+)""",
    re.X | re.S,
)


def strip_source(text):
    """`text` with comments, string and char literals blanked to spaces (newlines kept), so that
    positions and line numbers stay those of the source. Lifetimes are left as they are."""
    out, i, n = list(text), 0, len(text)
    while i < n:
        m = LEX.match(text, i)
        if not m:
            i += 1
            continue
        end = m.end()
        if m.lastgroup == "block":  # nested, as Rust's are
            depth = 1
            while end < n and depth:
                step = text[end : end + 2]
                depth += {"/*": 1, "*/": -1}.get(step, 0)
                end += 2 if step in ("/*", "*/") else 1
        elif m.group("raw"):
            close = text.find('"' + m.group("hashes"), end)
            end = n if close < 0 else close + 1 + len(m.group("hashes"))
        if m.lastgroup != "word":
            out[i:end] = [c if c == "\n" else " " for c in text[i:end]]
        i = end
    return "".join(out)


def brace_spans(code):
    """For each `{` its matching `}`, as (open, close, opens_inline_mod)."""
    spans, stack = [], []
    mod_open = re.compile(r"\bmod\s+" + IDENT + r"\s*$")
    for i, c in enumerate(code):
        if c == "{":
            before = code[max(0, i - 200) : i]
            stack.append((i, bool(mod_open.search(before))))
        elif c == "}" and stack:
            start, is_mod = stack.pop()
            spans.append((start, i, is_mod))
    return spans


def depth_at(spans, pos, mods_only):
    return sum(1 for s, e, m in spans if s < pos < e and (m or not mods_only))


TOKEN = re.compile(r"::|[{},*]|" + IDENT)


def parse_use_tree(body):
    """The leaves of a use tree: (segments, imported name, is a glob)."""
    tokens, leaves = TOKEN.findall(body), []

    def tree(i, prefix):
        path = list(prefix)
        while i < len(tokens):
            tok = tokens[i]
            if tok == "::":
                if not path:
                    path.append("::")  # a leading `::`: an extern crate
                i += 1
            elif tok == "{":
                i += 1
                while i < len(tokens) and tokens[i] != "}":
                    i = i + 1 if tokens[i] == "," else tree(i, path)
                return i + 1
            elif tok == "*":
                leaves.append((path, None, True))
                return i + 1
            elif tok in ("}", ","):
                return i
            elif i + 1 < len(tokens) and tokens[i + 1] == "::":
                path.append(tok)
                i += 2
            else:  # the last segment, perhaps renamed; `self` imports the module itself
                alias = tokens[i + 2] if i + 2 < len(tokens) and tokens[i + 1] == "as" else None
                if tok == "self":
                    leaves.append((path, alias or (path[-1] if path else "self"), False))
                else:
                    leaves.append((path + [tok], alias or tok, False))
                return i + (3 if alias else 1)
        return i

    i = 0
    while i < len(tokens):
        i = i + 1 if tokens[i] in ("}", ",") else tree(i, [])
    return leaves


USE_DECL = re.compile(r"(?<![A-Za-z0-9_:])use\s+")


def use_declarations(code):
    """(start, end, body) of each `use ...;` in stripped code."""
    found, pos = [], 0
    while True:
        m = USE_DECL.search(code, pos)
        if not m:
            return found
        end = code.find(";", m.end())
        if end < 0:
            return found
        found.append((m.start(), end + 1, code[m.end() : end]))
        pos = end + 1


CODE_PATH = re.compile(r"(?<![A-Za-z0-9_:])(::\s*)?(" + IDENT + r"(?:\s*::\s*" + IDENT + r")+)")


class SourceFile:
    def __init__(self, path, module):
        self.path = path
        self.module = module  # segments from the crate root
        with open(path, encoding="utf-8") as f:
            self.text = f.read()
        self.code = strip_source(self.text)
        self.spans = brace_spans(self.code)
        self.uses = []  # (pos, segments, name, is_glob)
        blanked = list(self.code)
        for start, end, body in use_declarations(self.code):
            for segs, name, is_glob in parse_use_tree(body):
                self.uses.append((start, segs, name, is_glob))
            for k in range(start, end):
                if blanked[k] != "\n":
                    blanked[k] = " "
        self.code_without_uses = "".join(blanked)
        self.path_attrs = [m.start() for m in re.finditer(r"#\s*\[\s*path\s*=", self.code)]

    def line(self, pos):
        return self.text.count("\n", 0, pos) + 1

    def top_level_items(self):
        """Names of the items defined at the top of the file, and the `mod x;` it declares."""
        items, declared = set(), []
        pattern = re.compile(
            r"\b(?:(?:const|async|unsafe|extern)\s+)*(fn|struct|enum|trait|type|const|static|union|mod)\s+(?:mut\s+)?("
            + IDENT
            + r")(\s*;)?"
        )
        for m in pattern.finditer(self.code):
            if depth_at(self.spans, m.start(), mods_only=False):
                continue
            name = m.group(2)
            if name in KEYWORDS_NOT_NAMES:
                continue
            if m.group(1) == "mod" and m.group(3):
                declared.append(name)
            else:
                items.add(name)
        for m in re.finditer(r"\bmacro_rules!\s*(" + IDENT + r")", self.code):
            items.add(m.group(1))
        return items, declared

    def code_paths(self):
        """(pos, segments) of every path with `::` outside use declarations."""
        for m in CODE_PATH.finditer(self.code_without_uses):
            segs = [s.strip() for s in m.group(2).split("::")]
            if m.group(1):
                segs = ["::"] + segs
            yield m.start(), segs


def resolve(segs, current, bare_ok):
    """Absolute segments of `segs` used in module `current`, or None when it leaves the crate
    or its start is not a name this reader can place (`bare_ok` says which bare names are
    relative to `current`)."""
    if not segs or segs[0] == "::":
        return None
    head = segs[0]
    if head == "crate":
        return segs[1:]
    if head == "self":
        return current + segs[1:]
    if head == "super":
        base, i = list(current), 0
        while i < len(segs) and segs[i] == "super":
            if not base:
                return None
            base.pop()
            i += 1
        return base + segs[i:]
    if bare_ok(head):
        return current + segs
    return None


def crate_root(directory):
    d = os.path.abspath(directory)
    while True:
        has_root = any(os.path.isfile(os.path.join(d, f)) for f in ("lib.rs", "main.rs"))
        parent = os.path.dirname(d)
        if has_root and (os.path.basename(d) == "src" or os.path.isfile(os.path.join(parent, "Cargo.toml"))):
            return d
        if parent == d:
            return None
        d = parent


def module_of(path, root):
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    if parts[-1] in ("mod.rs", "lib.rs", "main.rs") and (len(parts) > 1 or parts[-1] != "mod.rs"):
        parts = parts[:-1]
    elif parts[-1].endswith(".rs"):
        parts[-1] = parts[-1][:-3]
    return parts


class Directory:
    def __init__(self, directory):
        self.dir = os.path.normpath(directory)
        self.warnings = []
        root = crate_root(self.dir)
        if root is None:
            raise ValueError(f"{directory}: no crate root (src/lib.rs or src/main.rs) above it")
        absdir = os.path.abspath(self.dir)
        if absdir == root:
            candidates = [os.path.join(absdir, f) for f in ("lib.rs", "main.rs")]
        else:
            candidates = [os.path.join(absdir, "mod.rs"), absdir + ".rs"]
        mod_path = next((c for c in candidates if os.path.isfile(c)), None)
        if mod_path is None:
            raise ValueError(f"{directory}: neither mod.rs in it nor {os.path.basename(absdir)}.rs beside it")
        self.module = [] if absdir == root else os.path.relpath(absdir, root).split(os.sep)
        self.mod_label = os.path.relpath(mod_path, absdir)
        self.mod_file = SourceFile(mod_path, self.module)
        self.mod_items, declared = self.mod_file.top_level_items()
        self.children = {}  # child name -> label
        self.files = {self.mod_label: [self.mod_file]}
        names = list(declared)
        for entry in sorted(os.listdir(absdir)):
            full = os.path.join(absdir, entry)
            if entry.endswith(".rs") and entry not in ("mod.rs", "lib.rs", "main.rs") and os.path.isfile(full):
                stem = entry[:-3]
            elif os.path.isdir(full):
                stem = entry
            else:
                continue
            if stem not in names:
                if os.path.isfile(full) or os.path.isfile(os.path.join(full, "mod.rs")):
                    self.warnings.append(f"{entry}: not declared by `mod {stem};` in {self.mod_label}")
                    names.append(stem)
        for name in names:
            file = os.path.join(absdir, name + ".rs")
            sub = os.path.join(absdir, name)
            paths = [file] if os.path.isfile(file) else []
            if os.path.isdir(sub):
                for dirpath, _, filenames in os.walk(sub):
                    paths += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".rs")]
            if not paths:
                self.warnings.append(f"`mod {name};`: no {name}.rs nor {name}/mod.rs")
                continue
            label = name + ".rs" if os.path.isfile(file) else name + "/"
            if os.path.isfile(file) and os.path.isdir(sub):
                label = f"{name}.rs+{name}/"
            self.children[name] = label
            self.files[label] = [SourceFile(p, module_of(p, root)) for p in sorted(paths)]
        # Names the module file brings in with `use`, to follow re-exports.
        bare = lambda head: head in self.children or head in self.mod_items
        self.mod_imports = {
            name: resolve(segs, self.module, bare)
            for pos, segs, name, is_glob in self.mod_file.uses
            if not is_glob and not depth_at(self.mod_file.spans, pos, mods_only=True)
        }
        for files in self.files.values():
            for f in files:
                for pos in f.path_attrs:
                    self.warnings.append(f"{os.path.relpath(f.path)}:{f.line(pos)}: #[path] is not followed")

    def target(self, absolute, is_glob, from_mod=False):
        """The node an absolute path inside this directory's module names, with a note (`from_mod`:
        the path is used in the module file itself)."""
        n = len(self.module)
        if absolute is None or absolute[:n] != self.module:
            return None, None
        rest = absolute[n:]
        if not rest:
            return (self.mod_label, "*") if is_glob else (None, None)
        head = rest[0]
        if head == INLINE:
            return None, None
        if head in self.children:
            return self.children[head], (rest[1] if len(rest) > 1 else head)
        if head in self.mod_items:
            return self.mod_label, head
        if head in self.mod_imports:
            via = self.mod_imports[head]
            node, _ = self.target(via, False) if via is not None else (None, None)
            if node is not None and node != self.mod_label:
                return node, head if from_mod else f"{head} (re-exported by {self.mod_label})"
            return self.mod_label, f"{head} (imported by {self.mod_label})"
        return self.mod_label, f"{head} (not found in {self.mod_label})"

    def edges(self):
        edges = defaultdict(set)
        for label, files in self.files.items():
            is_mod = label == self.mod_label
            # In the module file, a bare `child::f` or `Item::f` is relative to the module.
            here = set(self.children) | self.mod_items | set(self.mod_imports) if is_mod else set()
            for f in files:
                paths = [(pos, segs, glob) for pos, segs, _, glob in f.uses]
                paths += [(pos, segs, False) for pos, segs in f.code_paths()]
                for pos, segs, is_glob in paths:
                    depth = depth_at(f.spans, pos, mods_only=True)
                    bare = lambda h: depth == 0 and h in here
                    node, item = self.target(resolve(segs, f.module + [INLINE] * depth, bare), is_glob, is_mod)
                    if node is not None and node != label:
                        edges[(label, node)].add(item)
        return edges


def cycles(nodes, edges):
    """The shortest cycle through each node that has one, without rotations of one another."""
    succ = defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
    found, seen = [], set()
    for start in sorted(nodes):
        prev, queue = {start: None}, deque([start])
        end = None
        while queue and end is None:
            node = queue.popleft()
            for nxt in sorted(succ[node]):
                if nxt == start:
                    end = node
                    break
                if nxt not in prev:
                    prev[nxt] = node
                    queue.append(nxt)
        if end is None:
            continue
        path = [end]
        while prev[path[0]] is not None:
            path.insert(0, prev[path[0]])
        key = frozenset(zip(path, path[1:] + path[:1]))
        if key not in seen:
            seen.add(key)
            found.append(path + [start])
    return found


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    status = 0
    for directory in argv[1:]:
        try:
            d = Directory(directory)
        except (ValueError, OSError, UnicodeDecodeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        module = "::".join(["crate"] + d.module)
        print(f"{d.dir} ({module})")
        print("  nodes: " + ", ".join([d.mod_label] + sorted(d.children.values())))
        for warning in d.warnings:
            print(f"  warning: {warning}")
        edges = d.edges()
        if not edges:
            print("  no edges")
        for (a, b), items in sorted(edges.items()):
            print(f"  {a} -> {b}: {', '.join(sorted(items))}")
        found = cycles(set(d.files), edges)
        if found:
            status = 1
            for cycle in found:
                print("  CYCLE: " + " -> ".join(cycle))
        else:
            print("  no cycle")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
