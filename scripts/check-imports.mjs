#!/usr/bin/env node
// Fails on an import cycle: between TypeScript modules under ts/ (relative imports, type-only ones included:
// a cycle of types is still a cycle a reader must untangle), and between the modules of each Rust crate
// (`use crate::…`, `use super::…` and paths in code, at the granularity of top-level modules and files).
// No dependencies: a regex per import form is enough for this codebase's style, and the check is meant to be
// read in a minute.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');

function files(dir, ext) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p, ext));
    else if (p.endsWith(ext)) out.push(p);
  }
  return out;
}

/** Strongly connected components with more than one node, or a node importing itself (Tarjan). */
function cycles(graph) {
  let index = 0;
  const stack = [];
  const on = new Set();
  const idx = new Map();
  const low = new Map();
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v)?.has(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

function typescriptGraph() {
  const graph = new Map();
  for (const file of files(join(root, 'ts'), '.ts')) {
    const from = relative(root, file);
    const deps = new Set();
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]/g)) {
      deps.add(relative(root, resolve(dirname(file), m[1].replace(/\.js$/, '.ts'))));
    }
    graph.set(from, deps);
  }
  return graph;
}

/** A crate's modules: `a` for src/a.rs or src/a/mod.rs, `a::b` for src/a/b.rs, `lib` for src/lib.rs. */
function rustGraph(crate) {
  const src = join(root, 'crates', crate, 'src');
  const graph = new Map();
  const moduleOf = (file) => {
    const rel = relative(src, file).replace(/\.rs$/, '').split('/');
    if (rel.at(-1) === 'mod') rel.pop();
    return rel.join('::') || 'lib';
  };
  for (const file of files(src, '.rs')) {
    const mod = moduleOf(file);
    if (mod === 'lib' || mod === 'main') continue;
    const text = readFileSync(file, 'utf8')
      .replace(/#\[cfg\(test\)\]\s*mod\s+tests\s*\{[\s\S]*$/m, '') // unit tests may reach anywhere
      .replace(/\/\/.*$/gm, '');
    const deps = new Set();
    for (const m of text.matchAll(/\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)/g)) {
      const path = m[2].slice(2).split('::');
      // `super` of a::b (a/b.rs) and of a (a/mod.rs) alike is the module above.
      const base = m[1] === 'crate' ? [] : mod.split('::').slice(0, -1);
      const target = [...base, ...path];
      // The longest prefix that is a module of the crate.
      let t = target.length;
      while (t > 0 && !known(src, target.slice(0, t))) t--;
      if (t === 0) continue;
      const dep = target.slice(0, t).join('::');
      if (dep !== mod && !mod.startsWith(`${dep}::`) && !dep.startsWith(`${mod}::`)) deps.add(dep);
    }
    graph.set(mod, deps);
  }
  return graph;
}

/** Whether `parts` name a module file of the crate (`a/b.rs` or `a/b/mod.rs`). */
function known(src, parts) {
  const p = join(src, ...parts);
  const isFile = (f) => {
    try {
      return statSync(f).isFile();
    } catch {
      return false;
    }
  };
  return isFile(`${p}.rs`) || isFile(join(p, 'mod.rs'));
}

let failed = false;
const report = (what, found) => {
  for (const c of found) {
    failed = true;
    console.error(`import cycle in ${what}: ${c.join(' ⇄ ')}`);
  }
  if (found.length === 0) console.log(`${what}: no import cycles`);
};
report('ts/', cycles(typescriptGraph()));
// Crates named on the command line, or all of them.
const named = process.argv.slice(2);
const crates = named.length > 0 ? named : readdirSync(join(root, 'crates'));
for (const crate of crates) report(`crates/${crate}`, cycles(rustGraph(crate)));
process.exit(failed ? 1 : 0);
