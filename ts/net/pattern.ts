// Domain patterns (docs/architecture.md#one-dns-query): `app.corp.example`, `*.corp.example`,
// `**.corp.example`, `build-?.ci.example`.
//
// One implementation, the core crate's (`dnsnat_core::pattern`), reached through the addon. The client's stub
// matches every query against its resources there; the gateway asks here whether an `AssignedIps` domain
// matches its resource's pattern, and the configuration loaders parse patterns here. Had each side its own
// matcher, a client could be refused a name its own stub handed out, or granted one it should not have.
// Calls cross into Rust once per pattern parsed or domain checked, never per packet.
import type { NativePattern } from '../../index.js';
import native from '../native.js';

export class PatternError extends Error {
  override readonly name = 'PatternError';
}

/** Whether `domain` (no trailing dot, any case) is a plain host name: labels of 1–63 letters, digits, `-`, `_`. */
export function isHostname(domain: string): boolean {
  return native.isHostname(domain);
}

export class DomainPattern {
  /** The normalised text: lower case, no trailing dot. */
  readonly text: string;
  /** Whether the pattern has no wildcard. */
  readonly isExact: boolean;

  private constructor(private readonly inner: NativePattern) {
    this.text = inner.text;
    this.isExact = inner.isExact;
  }

  /** Parses a pattern; throws a `PatternError` saying what is wrong. */
  static parse(input: string): DomainPattern {
    let inner: NativePattern;
    try {
      inner = native.NativePattern.parse(input);
    } catch (e) {
      throw new PatternError((e as Error).message);
    }
    return new DomainPattern(inner);
  }

  /** Whether `domain` (any case, optional trailing dot) is a host name this pattern matches. */
  matches(domain: string): boolean {
    return this.inner.matches(domain);
  }

  toString(): string {
    return this.text;
  }
}
