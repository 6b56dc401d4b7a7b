// Domain patterns, the gateway's side (docs/architecture.md#one-dns-query).
//
// The client matches names against every pattern at once in Rust (dnsnat-core's `PatternSet`); the gateway
// only ever asks "does this one domain match this one resource's pattern?" when it validates an
// `AssignedIps`. That question must get exactly the answer the client's stub gives, or a client would be
// refused a domain its own resolver handed out (or, worse, granted one it did not). So the rules below are
// the design's, one by one, and `__test__/gateway/pattern.test.ts` replays the Rust crate's cases:
//
// - `?` matches exactly one character inside one label; `*` any run (possibly empty) inside one label;
//   neither ever matches a dot.
// - A pattern whose first label is a lone `*` also matches the bare parent (`*.corp.example` matches
//   `corp.example`).
// - `**` as a whole label matches zero or more whole labels, anywhere in the pattern.
// - ASCII case-insensitive; one trailing dot ignored, on the pattern and on the name.
// - The last label (the TLD) of a pattern is literal, so no pattern captures every name.
// - A name only matches when it is a plain host name (labels of 1–63 letters, digits, `-`, `_`, at most
//   253 characters): the gateway resolves what it accepts, and nothing else should reach its resolver.

export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

export class PatternError extends Error {
  override readonly name = 'PatternError';
}

type Label = { kind: 'literal'; text: string } | { kind: 'glob'; text: string } | { kind: 'any-labels' };

// Checked before lower-casing: `toLowerCase` maps a few non-ASCII characters (the Kelvin sign) to ASCII.
const PATTERN_LABEL = /^[A-Za-z0-9_\-?*]+$/;
const HOST_LABEL = /^[A-Za-z0-9_-]{1,63}$/;

function stripDot(text: string): string {
  return text.endsWith('.') ? text.slice(0, -1) : text;
}

/** Whether `domain` (no trailing dot, any case) is a plain host name. */
export function isHostname(domain: string): boolean {
  if (domain.length === 0 || domain.length > MAX_NAME_LENGTH) return false;
  return domain.split('.').every((l) => HOST_LABEL.test(l));
}

/** `?`/`*` inside one label, with single-star backtracking: O(label × glob) worst case, labels ≤ 63. */
function globMatches(glob: string, label: string): boolean {
  let p = 0;
  let l = 0;
  let starP = -1;
  let starL = 0;
  while (l < label.length) {
    const c = glob[p];
    if (c === '*') {
      starP = p++;
      starL = l;
    } else if (c !== undefined && (c === '?' || c === label[l])) {
      p++;
      l++;
    } else if (starP >= 0) {
      p = starP + 1;
      l = ++starL;
    } else {
      return false;
    }
  }
  while (glob[p] === '*') p++;
  return p === glob.length;
}

function labelMatches(pattern: Label, label: string): boolean {
  switch (pattern.kind) {
    case 'literal':
      return pattern.text === label;
    case 'glob':
      return globMatches(pattern.text, label);
    case 'any-labels':
      return true;
  }
}

/** Dynamic programming over (pattern labels × name labels): several `**` cost O(p·n), never exponential. */
function labelsMatch(pattern: readonly Label[], name: readonly string[]): boolean {
  const n = name.length;
  let next: boolean[] = Array(n + 1).fill(false);
  next[n] = true;
  let row: boolean[] = Array(n + 1).fill(false);
  for (let i = pattern.length - 1; i >= 0; i--) {
    const p = pattern[i] as Label;
    for (let j = n; j >= 0; j--) {
      if (p.kind === 'any-labels') row[j] = next[j] === true || (j < n && row[j + 1] === true);
      else row[j] = j < n && labelMatches(p, name[j] as string) && next[j + 1] === true;
    }
    [row, next] = [next, row];
  }
  return next[0] === true;
}

export class DomainPattern {
  /** The normalised text: lower case, no trailing dot. */
  readonly text: string;
  private readonly labels: readonly Label[];
  private readonly leadingStar: boolean;

  private constructor(text: string, labels: Label[]) {
    this.text = text;
    this.labels = labels;
    this.leadingStar = labels[0]?.kind === 'glob' && labels[0].text === '*';
  }

  /** Parses a pattern; throws a `PatternError` saying what is wrong. */
  static parse(input: string): DomainPattern {
    const text = stripDot(input);
    if (text.length === 0) throw new PatternError('pattern is empty');
    if (text.length > MAX_NAME_LENGTH) {
      throw new PatternError(`pattern is longer than ${MAX_NAME_LENGTH} characters`);
    }
    const labels: Label[] = text.split('.').map((original) => {
      const label = original.toLowerCase();
      if (label.length === 0) {
        throw new PatternError('pattern has an empty label (two dots in a row, or a leading dot)');
      }
      if (label.length > MAX_LABEL_LENGTH) {
        throw new PatternError(
          `label ${JSON.stringify(label)} is longer than ${MAX_LABEL_LENGTH} characters`,
        );
      }
      if (label === '**') return { kind: 'any-labels' };
      if (label.includes('**')) {
        throw new PatternError(
          `"**" must be a whole label (as in "**.corp.example"), found ${JSON.stringify(label)}`,
        );
      }
      if (!PATTERN_LABEL.test(original)) {
        const bad = [...original].find((c) => !/[A-Za-z0-9_\-?*]/.test(c));
        throw new PatternError(
          `character ${JSON.stringify(bad)} is not allowed (use letters, digits, "-", "_", "?", "*"; write internationalised names in punycode)`,
        );
      }
      return /[?*]/.test(label) ? { kind: 'glob', text: label } : { kind: 'literal', text: label };
    });
    if (labels[labels.length - 1]?.kind !== 'literal') {
      throw new PatternError('the last label (the TLD) must not contain wildcards');
    }
    return new DomainPattern(text.toLowerCase(), labels);
  }

  /** Whether the pattern has no wildcard. */
  get isExact(): boolean {
    return this.labels.every((l) => l.kind === 'literal');
  }

  /** Whether `domain` (any case, optional trailing dot) is a host name this pattern matches. */
  matches(domain: string): boolean {
    const name = stripDot(domain);
    if (!isHostname(name)) return false;
    const labels = name.toLowerCase().split('.');
    return (
      labelsMatch(this.labels, labels) || (this.leadingStar && labelsMatch(this.labels.slice(1), labels))
    );
  }

  toString(): string {
    return this.text;
  }
}
