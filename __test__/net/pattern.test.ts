// Patterns are the core crate's, through the addon (ts/net/pattern.ts): these are the
// Rust crate's cases, plus a property test against a naive recursive matcher written from the rules.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainPattern, isHostname, PatternError } from '../../ts/net/pattern.js';

const p = (s: string) => DomainPattern.parse(s);

describe('DomainPattern', () => {
  it('exact names match case-insensitively and ignore a trailing dot', () => {
    const pat = p('App.Corp.Example');
    expect(pat.text).toBe('app.corp.example');
    expect(pat.matches('app.corp.example')).toBe(true);
    expect(pat.matches('APP.corp.EXAMPLE.')).toBe(true);
    expect(pat.matches('app.corp.example.com')).toBe(false);
    expect(pat.matches('x.app.corp.example')).toBe(false);
    expect(pat.matches('corp.example')).toBe(false);
    expect(pat.isExact).toBe(true);
    expect(p('app.corp.example.').text).toBe('app.corp.example');
  });

  it('only plain host names match', () => {
    const pat = p('*.corp.example');
    expect(pat.matches('a-b_c9.corp.example')).toBe(true);
    for (const bad of [
      'a b.corp.example',
      'a/b.corp.example',
      'ä.corp.example',
      '\u212Aelvin.corp.example', // the Kelvin sign lower-cases to an ASCII "k"
      '.corp.example',
      '',
      '.',
      `${'a'.repeat(64)}.corp.example`,
      'corp..example',
    ]) {
      expect(pat.matches(bad), bad).toBe(false);
    }
    expect(pat.matches(`${'a'.repeat(63)}.corp.example`)).toBe(true);
    expect(isHostname('corp.example')).toBe(true);
    expect(isHostname('corp..example')).toBe(false);
    expect(isHostname(`${'a.'.repeat(125)}abc`)).toBe(true); // 253 characters
    expect(isHostname(`${'a.'.repeat(126)}ab`)).toBe(false); // 254
  });

  it('? matches exactly one character inside one label', () => {
    const pat = p('build-?.corp.example');
    expect(pat.matches('build-1.corp.example')).toBe(true);
    expect(pat.matches('BUILD-X.corp.example')).toBe(true);
    expect(pat.matches('build-.corp.example')).toBe(false);
    expect(pat.matches('build-12.corp.example')).toBe(false);
    expect(pat.matches('build-1.x.corp.example')).toBe(false);
    expect(pat.isExact).toBe(false);
  });

  it('* matches a run inside one label, and a leading *. also matches the bare parent', () => {
    let pat = p('*.corp.example');
    expect(pat.matches('app.corp.example')).toBe(true);
    expect(pat.matches('corp.example')).toBe(true);
    expect(pat.matches('a.b.corp.example')).toBe(false);
    expect(pat.matches('example')).toBe(false);

    pat = p('web-*.corp.example');
    expect(pat.matches('web-.corp.example')).toBe(true);
    expect(pat.matches('web-prod.corp.example')).toBe(true);
    expect(pat.matches('corp.example')).toBe(false);
    expect(pat.matches('api.corp.example')).toBe(false);

    pat = p('a.*.corp.example');
    expect(pat.matches('a.b.corp.example')).toBe(true);
    expect(pat.matches('a.corp.example')).toBe(false);

    pat = p('a*b*c.example');
    expect(pat.matches('aXbYbZc.example')).toBe(true);
    expect(pat.matches('aXbYbZ.example')).toBe(false);
    expect(p('*?.example').matches('x.example')).toBe(true);
    expect(p('*-prod.example').matches('web-prod2.example')).toBe(false);
  });

  it('** matches zero or more whole labels, anywhere', () => {
    let pat = p('**.corp.example');
    expect(pat.matches('corp.example')).toBe(true);
    expect(pat.matches('a.corp.example')).toBe(true);
    expect(pat.matches('a.b.c.corp.example')).toBe(true);
    expect(pat.matches('corp.example.com')).toBe(false);
    expect(pat.matches('xcorp.example')).toBe(false);

    pat = p('app.**.web.**.example.com');
    expect(pat.matches('app.web.example.com')).toBe(true);
    expect(pat.matches('app.x.web.y.z.example.com')).toBe(true);
    expect(pat.matches('app.example.com')).toBe(false);
    expect(pat.matches('x.app.web.example.com')).toBe(false);
  });

  it('rejects invalid patterns with a reason', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['.', /empty/],
      ['a..b', /empty label/],
      ['.a.b', /empty label/],
      ['*.corp.*', /TLD/],
      ['**', /TLD/],
      ['*', /TLD/],
      ['a**.corp', /whole label.*a\*\*/],
      ['***.corp', /whole label/],
      ['a b.corp', /" "/],
      ['ä.corp', /"ä"/],
      [`${'a'.repeat(64)}.corp`, /longer than 63/],
      [`${'a.'.repeat(127)}bc`, /longer than 253/],
    ];
    for (const [text, why] of cases) {
      expect(() => p(text), text).toThrow(PatternError);
      expect(() => p(text), text).toThrow(why);
    }
    expect(p('intranet').matches('INTRANET')).toBe(true);
    expect(p('_ldap._tcp.corp.example').matches('_ldap._tcp.corp.example')).toBe(true);
  });

  // A reference written directly from the rules, recursive and slow, for the property test.
  const refLabel = (pt: string, l: string): boolean => {
    if (pt === '') return l === '';
    const [c, rest] = [pt[0], pt.slice(1)];
    if (c === '*') return refLabel(rest, l) || (l !== '' && refLabel(pt, l.slice(1)));
    if (c === '?') return l !== '' && refLabel(rest, l.slice(1));
    return l[0] === c && refLabel(rest, l.slice(1));
  };
  const refLabels = (pt: string[], n: string[]): boolean => {
    if (pt.length === 0) return n.length === 0;
    const [first, ...rest] = pt as [string, ...string[]];
    if (first === '**') return refLabels(rest, n) || (n.length > 0 && refLabels(pt, n.slice(1)));
    return n.length > 0 && refLabel(first, n[0] as string) && refLabels(rest, n.slice(1));
  };
  const reference = (pattern: string, name: string): boolean => {
    const pt = pattern.toLowerCase().split('.');
    const n = name.toLowerCase().split('.');
    return refLabels(pt, n) || (pt[0] === '*' && refLabels(pt.slice(1), n));
  };

  it('matches like the reference on random patterns and names', () => {
    const label = fc.constantFrom('a', 'b', 'B', 'ab', '?', '*', 'a*', '*b', '?a', 'a?*', '**');
    const tld = fc.constantFrom('a', 'b', 'ab');
    const pattern = fc
      .tuple(fc.array(label, { maxLength: 5 }), tld)
      .map(([labels, t]) => [...labels, t].join('.'));
    const name = fc
      .array(fc.stringMatching(/^[abAB]{1,3}$/), { minLength: 1, maxLength: 6 })
      .map((l) => l.join('.'));
    fc.assert(
      fc.property(pattern, name, (pt, n) => {
        expect(p(pt).matches(n)).toBe(reference(pt, n));
      }),
      { numRuns: 3000 },
    );
  });
});
