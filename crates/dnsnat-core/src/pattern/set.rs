//! Matching one name against many patterns: a label trie walked from the TLD.
//!
//! Each trie edge is one pattern label. Literal edges sit in a hash map, so the
//! common case (exact names and `*.zone` patterns under a few zones) costs one
//! hash lookup per label of the name, whatever the number of patterns. Glob
//! edges (`?`, `*`) are indexed by their literal prefix and suffix (`web-*-prod`
//! → `web-` … `-prod`): a label costs one hash lookup per distinct
//! (prefix length, suffix length) shape at the node, and only globs whose prefix
//! and suffix already fit the label are fully matched. A `**` edge leads to a node that may absorb
//! any number of labels; the walk is a set-of-states (NFA) simulation, so its
//! cost is bounded by (labels in the name) × (live states), never exponential.

use std::collections::HashMap;

use super::glob::Glob;
use super::{LabelPattern, Pattern};

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<[u8]>, u32>,
    globs: GlobEdges,
    any_labels: Option<u32>,
    /// This node was reached through `**`: it may consume a label and stay.
    absorbs: bool,
    /// Entries whose pattern ends (leftmost label) here.
    terminal: Vec<u32>,
}

/// A set of patterns, each with a value, answering "which patterns match this name".
#[derive(Debug)]
pub struct PatternSet<T> {
    nodes: Vec<Node>,
    entries: Vec<(Pattern, T)>,
}

impl<T> Default for PatternSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PatternSet<T> {
    pub fn new() -> Self {
        Self {
            nodes: vec![Node::default()],
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry with this index, as returned by [`Self::insert`] and the match functions.
    pub fn entry(&self, index: usize) -> (&Pattern, &T) {
        let (p, v) = &self.entries[index];
        (p, v)
    }

    /// The value of an entry, for updating it in place.
    pub fn value_mut(&mut self, index: usize) -> &mut T {
        &mut self.entries[index].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Pattern, &T)> {
        self.entries.iter().map(|(p, v)| (p, v))
    }

    /// Adds a pattern. The same pattern may be added more than once; every entry matches.
    pub fn insert(&mut self, pattern: Pattern, value: T) -> usize {
        let id = u32::try_from(self.entries.len()).expect("fewer than 2^32 patterns");
        let mut node = 0usize;
        let mut parent_of_last = 0usize;
        for label in pattern.labels().iter().rev() {
            parent_of_last = node;
            node = self.child(node, label);
        }
        self.nodes[node].terminal.push(id);
        if pattern.starts_with_lone_star() {
            // `*.corp.example` also matches `corp.example`.
            self.nodes[parent_of_last].terminal.push(id);
        }
        self.entries.push((pattern, value));
        id as usize
    }

    fn child(&mut self, node: usize, label: &LabelPattern) -> usize {
        let existing = match label {
            LabelPattern::Literal(lit) => self.nodes[node].literal.get(lit).copied(),
            LabelPattern::Glob(g) => self.nodes[node].globs.find(g),
            LabelPattern::AnyLabels => self.nodes[node].any_labels,
        };
        if let Some(c) = existing {
            return c as usize;
        }
        let c = u32::try_from(self.nodes.len()).expect("fewer than 2^32 trie nodes");
        self.nodes.push(Node {
            absorbs: matches!(label, LabelPattern::AnyLabels),
            ..Node::default()
        });
        let n = &mut self.nodes[node];
        match label {
            LabelPattern::Literal(lit) => {
                n.literal.insert(lit.clone(), c);
            }
            LabelPattern::Glob(g) => n.globs.insert(g.clone(), c),
            LabelPattern::AnyLabels => n.any_labels = Some(c),
        }
        c as usize
    }

    /// Appends to `out` the index of every entry whose pattern matches `name`
    /// (lower-case labels, left to right), in no particular order.
    pub fn matches_into(&self, name: &[&[u8]], out: &mut Vec<usize>) {
        if name.is_empty() || name.iter().any(|l| l.is_empty()) {
            return;
        }
        let mut states: Vec<u32> = Vec::with_capacity(8);
        let mut next: Vec<u32> = Vec::with_capacity(8);
        states.push(0);
        self.close(&mut states);
        for label in name.iter().rev() {
            next.clear();
            for &s in &states {
                let n = &self.nodes[s as usize];
                if n.absorbs {
                    push_unique(&mut next, s);
                }
                if let Some(&c) = n.literal.get(*label) {
                    push_unique(&mut next, c);
                }
                n.globs.for_each_match(label, |c| push_unique(&mut next, c));
            }
            std::mem::swap(&mut states, &mut next);
            if states.is_empty() {
                return;
            }
            self.close(&mut states);
        }
        for &s in &states {
            for &e in &self.nodes[s as usize].terminal {
                let e = e as usize;
                if !out.contains(&e) {
                    out.push(e);
                }
            }
        }
    }

    /// Adds the `**` children (zero labels consumed), transitively.
    fn close(&self, states: &mut Vec<u32>) {
        let mut i = 0;
        while i < states.len() {
            if let Some(c) = self.nodes[states[i] as usize].any_labels {
                push_unique(states, c);
            }
            i += 1;
        }
    }

    /// Every matching entry, most specific pattern first (ties by pattern text,
    /// then insertion order).
    pub fn matches(&self, name: &[&[u8]]) -> Vec<usize> {
        let mut out = Vec::new();
        self.matches_into(name, &mut out);
        out.sort_by(|a, b| {
            self.entries[*a]
                .0
                .cmp_specificity(&self.entries[*b].0)
                .then(a.cmp(b))
        });
        out
    }

    /// The most specific matching entry.
    pub fn best(&self, name: &[&[u8]]) -> Option<usize> {
        let mut out = Vec::new();
        self.matches_into(name, &mut out);
        out.into_iter().min_by(|a, b| {
            self.entries[*a]
                .0
                .cmp_specificity(&self.entries[*b].0)
                .then(a.cmp(b))
        })
    }

    /// [`Self::best`] for a presentation-format domain (any case, optional trailing dot).
    pub fn best_for_domain(&self, domain: &str) -> Option<(&Pattern, &T)> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let lower = domain.to_ascii_lowercase();
        let labels: Vec<&[u8]> = lower.split('.').map(str::as_bytes).collect();
        self.best(&labels).map(|i| self.entry(i))
    }
}

/// Separates prefix and suffix in an index key. Pattern literals never contain a
/// dot; a label that does can only produce extra candidates, which the full
/// match then rejects.
const SEP: u8 = b'.';
const MAX_KEY: usize = 2 * super::MAX_LABEL_LEN + 1;

/// The glob edges of one node, indexed by literal prefix and suffix.
#[derive(Debug, Default)]
struct GlobEdges {
    /// `prefix ++ SEP ++ suffix` → the globs with that prefix and suffix.
    by_key: HashMap<Box<[u8]>, Vec<(Glob, u32)>>,
    /// The distinct (prefix length, suffix length) pairs present.
    shapes: Vec<(usize, usize)>,
}

impl GlobEdges {
    fn key(prefix: &[u8], suffix: &[u8], buf: &mut [u8; MAX_KEY]) -> usize {
        let n = prefix.len() + 1 + suffix.len();
        buf[..prefix.len()].copy_from_slice(prefix);
        buf[prefix.len()] = SEP;
        buf[prefix.len() + 1..n].copy_from_slice(suffix);
        n
    }

    fn find(&self, g: &Glob) -> Option<u32> {
        let mut buf = [0; MAX_KEY];
        let n = Self::key(g.prefix(), g.suffix(), &mut buf);
        self.by_key
            .get(&buf[..n])?
            .iter()
            .find(|(other, _)| other == g)
            .map(|(_, c)| *c)
    }

    fn insert(&mut self, g: Glob, child: u32) {
        let shape = (g.prefix().len(), g.suffix().len());
        if !self.shapes.contains(&shape) {
            self.shapes.push(shape);
        }
        let mut buf = [0; MAX_KEY];
        let n = Self::key(g.prefix(), g.suffix(), &mut buf);
        self.by_key
            .entry(buf[..n].into())
            .or_default()
            .push((g, child));
    }

    fn for_each_match(&self, label: &[u8], mut f: impl FnMut(u32)) {
        let mut buf = [0; MAX_KEY];
        for &(pl, sl) in &self.shapes {
            if pl + sl > label.len() {
                continue;
            }
            let n = Self::key(&label[..pl], &label[label.len() - sl..], &mut buf);
            if let Some(globs) = self.by_key.get(&buf[..n]) {
                for (g, c) in globs {
                    if g.matches(label) {
                        f(*c);
                    }
                }
            }
        }
    }
}

fn push_unique(v: &mut Vec<u32>, x: u32) {
    if !v.contains(&x) {
        v.push(x);
    }
}
