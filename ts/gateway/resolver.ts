// The gateway's DNS resolution (docs/architecture.md#the-gateways-policy): a thin typed layer over the
// native Resolver. One call is one lookup on the wire, A and AAAA together;
// caching for the TTL and one resolution in flight per domain belong to the
// caller (the gateway's state), not here.
import native from '../native.js';

export type ResolutionOutcome = 'ok' | 'nxdomain' | 'no-records' | 'timeout' | 'error';

/** What one resolution found. Addresses are sorted numerically, without duplicates. */
export interface Resolution {
  readonly outcome: ResolutionOutcome;
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
  /**
   * `ok`: the smallest TTL of the answer records (CNAMEs included); `nxdomain`
   * and `no-records`: the SOA's negative TTL capped at 300, or 30 without an
   * SOA; `timeout` and `error`: 0.
   */
  readonly ttlSeconds: number;
  /** Why it failed; on `ok`, set when one family failed while the other answered. */
  readonly error?: string;
  readonly elapsedMs: number;
}

export interface ResolverOptions {
  /** `ip` or `ip:port` (`[v6]:port`); default: `/etc/resolv.conf`. */
  readonly nameservers?: readonly string[];
  /** Overall deadline of one resolution (default 10000). */
  readonly timeoutMs?: number;
  /** Resolutions at once (default 1000); more are refused with error `busy`. */
  readonly maxInFlight?: number;
}

export interface ResolverStats {
  readonly inFlight: number;
  readonly started: number;
  readonly busy: number;
  readonly ok: number;
  readonly nxdomain: number;
  readonly noRecords: number;
  readonly timeout: number;
  readonly error: number;
}

/** The `error` of a resolution refused because `maxInFlight` were running. */
export const RESOLVER_BUSY = 'busy';

export type ResolverErrorCode =
  /** An option is out of range or a nameserver does not parse. */
  | 'invalid-options'
  /** The system configuration (`/etc/resolv.conf`) is unreadable or has no nameserver. */
  | 'system-config'
  /** The native side failed in a way that is none of the above. */
  | 'native';

export class ResolverError extends Error {
  override readonly name = 'ResolverError';
  constructor(
    readonly code: ResolverErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function toResolverError(e: unknown, usedSystemConfig: boolean): ResolverError {
  const err = e as { code?: unknown; message?: unknown };
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (err?.code === 'InvalidArg') return new ResolverError('invalid-options', message, { cause: e });
  if (usedSystemConfig) return new ResolverError('system-config', message, { cause: e });
  return new ResolverError('native', message, { cause: e });
}

type NativeResolver = InstanceType<typeof native.Resolver>;

/** True when a resolution found at least one address. */
export function hasAddresses(r: Resolution): boolean {
  return r.outcome === 'ok' && r.ipv4.length + r.ipv6.length > 0;
}

/** True when a resolution was refused because the resolver was full. */
export function isBusy(r: Resolution): boolean {
  return r.outcome === 'error' && r.error === RESOLVER_BUSY;
}

export class GatewayResolver {
  private constructor(private readonly inner: NativeResolver) {}

  /** Builds a resolver; rejects with a `ResolverError`. */
  static async create(options: ResolverOptions = {}): Promise<GatewayResolver> {
    const opts: { nameservers?: string[]; timeoutMs?: number; maxInFlight?: number } = {};
    if (options.nameservers !== undefined) opts.nameservers = [...options.nameservers];
    if (options.timeoutMs !== undefined) opts.timeoutMs = options.timeoutMs;
    if (options.maxInFlight !== undefined) opts.maxInFlight = options.maxInFlight;
    for (const key of ['timeoutMs', 'maxInFlight'] as const) {
      const v = opts[key];
      if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
        throw new ResolverError('invalid-options', `${key} must be a positive integer, got ${v}`);
      }
    }
    try {
      return new GatewayResolver(await native.Resolver.create(opts));
    } catch (e) {
      throw toResolverError(e, options.nameservers === undefined);
    }
  }

  /** Resolves A and AAAA of `domain`. Never rejects: every failure is an outcome. */
  async resolve(domain: string): Promise<Resolution> {
    const started = Date.now();
    try {
      const r = await this.inner.resolve(domain);
      return {
        outcome: r.outcome,
        ipv4: r.ipv4,
        ipv6: r.ipv6,
        ttlSeconds: r.ttlSeconds,
        ...(r.error === undefined ? {} : { error: r.error }),
        elapsedMs: r.elapsedMs,
      };
    } catch (e) {
      // Only reachable through a broken binding (e.g. a non-string domain from JS).
      return {
        outcome: 'error',
        ipv4: [],
        ipv6: [],
        ttlSeconds: 0,
        error: e instanceof Error ? e.message : String(e),
        elapsedMs: Date.now() - started,
      };
    }
  }

  /** The nameservers in use, `ip:port`. */
  get nameservers(): readonly string[] {
    return this.inner.nameservers;
  }

  get timeoutMs(): number {
    return this.inner.timeoutMs;
  }

  stats(): ResolverStats {
    return this.inner.stats();
  }
}
