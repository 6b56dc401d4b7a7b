// gateway.yaml (docs/gateway.md): read, validated with a schema, and turned into the normalised form the rest of
// the gateway uses (canonical IP text, parsed patterns, the private key read from its file).
//
// Every error names the file, the field and what was expected, one line per problem, all problems at once:
//   gateway.yaml: clients[0].tunnelIps[1]: expected an IP address, got "x"
// A config is either wholly valid or rejected; the caller (start or reload) never sees half of one. That is
// what makes a reload atomic: a bad edit is refused and the running config stays.
//
// The field names of docs/gateway.md are a contract; the extra optional fields (`device`, `metrics`, `resolution`)
// only add knobs with defaults.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import {
  base64Key,
  ConfigError,
  describeValue as describe,
  formatPath,
  ipAddress,
  ipv4Address as ipv4,
  ipv6Address as ipv6,
  issueMessage,
  ipOrSocketAddress as nameserver,
  parseYamlText,
  readPrivateKeyFile,
  socketAddress,
} from '../config/fields.js';
import { type Cidr, isTunnelIp, parseCidr, parseIp, TUNNEL_V4, TUNNEL_V6 } from '../net/ip.js';
import { DomainPattern, PatternError } from '../net/pattern.js';

export type IpStack = 'dual' | 'ipv4' | 'ipv6';

export interface ResourceConfig {
  readonly id: string;
  readonly pattern: DomainPattern;
  readonly ipStack: IpStack;
  /** `tcp/443`, `udp/5000-5999`, `icmp`; absent means every port and protocol. */
  readonly ports?: readonly string[];
  /** Ranges this resource may reach although the destination filter refuses them (loopback, link-local, ...). */
  readonly allowDestinations?: readonly Cidr[];
}

/** A client as the gateway's configuration lists it (the client's own configuration is `ClientConfig`). */
export interface GatewayClient {
  readonly id: string;
  readonly publicKey: string;
  /** Canonical addresses, each inside the tunnel ranges. */
  readonly tunnelIps: readonly string[];
  /** Ids of the resources this client may use. */
  readonly resources: readonly string[];
}

export interface ResolutionConfig {
  /** Deadline of one resolution (default 10 s; docs/architecture.md#the-gateways-policy). */
  readonly timeoutMs: number;
  /** Resolutions at once (default 1,000; docs/architecture.md#the-gateways-policy). */
  readonly maxInFlight: number;
  /** Domains waiting for a free slot; beyond this a resolution is refused and counted. */
  readonly maxQueued: number;
}

/** What one client may cost the gateway (docs/security.md). */
export interface GatewayLimits {
  /** Control packets per second a client may send; the rest are dropped on the packet thread and counted. */
  readonly controlPerSecond: number;
  readonly controlBurst: number;
  /** (domain, resource) bindings one client may hold. */
  readonly bindingsPerClient: number;
  /** A binding with no NAT session and no new one for this long is dropped (the client re-registers on use). */
  readonly bindingIdleSeconds: number;
  /** Resolutions one client may have started and waiting at once; joining one in flight is free. */
  readonly pendingResolutionsPerClient: number;
  /** Live NAT sessions of one client. */
  readonly sessionsPerClient: number;
}

export interface GatewayConfig {
  /** Where the config came from, for messages: the file path, or `gateway config` for an object. */
  readonly source: string;
  readonly privateKey: string;
  readonly listen: string;
  readonly tunnel: { readonly ipv4: string; readonly ipv6?: string };
  /** TUN device name. */
  readonly device: string;
  /** `ip` or `ip:port`; absent: `/etc/resolv.conf`. */
  readonly nameservers?: readonly string[];
  /** Set `ip_forward` and an nftables masquerade rule for the tunnel ranges, removed on exit. */
  readonly masquerade: boolean;
  /** `host:port` for Prometheus text (`GET /metrics`); absent: no listener. */
  readonly metrics?: string;
  readonly resolution: ResolutionConfig;
  readonly limits: GatewayLimits;
  readonly resources: readonly ResourceConfig[];
  readonly clients: readonly GatewayClient[];
}

// One error class for client.yaml and gateway.yaml, so `instanceof ConfigError` from the package works for both.
export { ConfigError };

export const DEFAULT_LISTEN = '0.0.0.0:51820';
export const DEFAULT_DEVICE = 'dnsnat-gw';
export const DEFAULT_RESOLUTION: ResolutionConfig = {
  timeoutMs: 10_000,
  maxInFlight: 1_000,
  maxQueued: 10_000,
};

export const DEFAULT_LIMITS: GatewayLimits = {
  controlPerSecond: 100,
  controlBurst: 200,
  bindingsPerClient: 10_000,
  bindingIdleSeconds: 3_600,
  pendingResolutionsPerClient: 100,
  sessionsPerClient: 65_536,
};

const PORT_RULE = /^(tcp|udp)\/(\d{1,5})(?:-(\d{1,5}))?$/;
/** The same grammar the native side enforces (crates/dnsnat-node/src/tunnel/ports.rs). */
export function isPortRule(text: string): boolean {
  const lower = text.trim().toLowerCase();
  if (lower === 'icmp') return true;
  const m = PORT_RULE.exec(lower);
  if (!m) return false;
  const from = Number(m[2]);
  const to = m[3] === undefined ? from : Number(m[3]);
  return from >= 1 && to <= 65535 && from <= to;
}

const got = (iss: { input?: unknown }) => `got ${describe(iss.input)}`;

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, {
  error: (iss) => `expected an id (letters, digits, "_", ".", "-"), ${got(iss)}`,
});
const patternText = z.string().superRefine((s, ctx) => {
  try {
    DomainPattern.parse(s);
  } catch (e) {
    const why = e instanceof PatternError ? e.message : String(e);
    ctx.addIssue({ code: 'custom', message: `expected a domain pattern, got ${describe(s)}: ${why}` });
  }
});
const positiveInt = z.number().int().positive();
const cidrText = z.string().refine((s) => parseCidr(s) !== undefined, {
  error: (iss) => `expected a prefix like 10.0.0.0/8 or fd00::/8 (host bits zero), ${got(iss)}`,
});

const schema = z
  .strictObject({
    privateKey: base64Key.optional(),
    privateKeyFile: z.string().min(1).optional(),
    listen: socketAddress.optional(),
    tunnel: z.strictObject({ ipv4, ipv6: ipv6.optional() }),
    device: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,15}$/, {
        error: (iss) => `expected an interface name of 1-15 characters, ${got(iss)}`,
      })
      .optional(),
    nameservers: z.array(nameserver).min(1).optional(),
    masquerade: z.boolean().optional(),
    metrics: socketAddress.optional(),
    resolution: z
      .strictObject({
        timeoutMs: positiveInt.optional(),
        maxInFlight: positiveInt.optional(),
        maxQueued: z.number().int().nonnegative().optional(),
      })
      .optional(),
    limits: z
      .strictObject({
        controlPerSecond: positiveInt.max(1_000_000).optional(),
        controlBurst: positiveInt.max(1_000_000).optional(),
        bindingsPerClient: positiveInt.optional(),
        bindingIdleSeconds: positiveInt.optional(),
        pendingResolutionsPerClient: positiveInt.optional(),
        sessionsPerClient: positiveInt.max(4_000_000).optional(),
      })
      .optional(),
    resources: z.array(
      z.strictObject({
        id,
        pattern: patternText,
        ipStack: z.enum(['dual', 'ipv4', 'ipv6']).optional(),
        ports: z
          .array(
            z.string().refine(isPortRule, {
              error: (iss) => `expected tcp/PORT, udp/PORT, tcp/FROM-TO, udp/FROM-TO or icmp, ${got(iss)}`,
            }),
          )
          .optional(),
        allowDestinations: z.array(cidrText).optional(),
      }),
    ),
    clients: z.array(
      z.strictObject({
        id,
        publicKey: base64Key,
        tunnelIps: z.array(ipAddress).min(1),
        resources: z.array(z.string()),
      }),
    ),
  })
  .superRefine((c, ctx) => {
    if ((c.privateKey === undefined) === (c.privateKeyFile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'expected exactly one of privateKey or privateKeyFile',
      });
    }
    const resourceIds = new Map<string, number>();
    c.resources.forEach((r, i) => {
      const first = resourceIds.get(r.id);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['resources', i, 'id'],
          message: `duplicate id ${JSON.stringify(r.id)} (also resources[${first}])`,
        });
      } else resourceIds.set(r.id, i);
    });
    const clientIds = new Map<string, number>();
    const keys = new Map<string, number>();
    const tunnelIps = new Map<string, string>();
    for (const own of [c.tunnel.ipv4, c.tunnel.ipv6]) {
      const ip = own === undefined ? undefined : parseIp(own);
      if (ip) tunnelIps.set(ip.text, 'tunnel (the gateway itself)');
    }
    c.clients.forEach((cl, i) => {
      const firstId = clientIds.get(cl.id);
      if (firstId !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['clients', i, 'id'],
          message: `duplicate id ${JSON.stringify(cl.id)} (also clients[${firstId}])`,
        });
      } else clientIds.set(cl.id, i);
      const firstKey = keys.get(cl.publicKey);
      if (firstKey !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['clients', i, 'publicKey'],
          message: `the same key as clients[${firstKey}]`,
        });
      } else keys.set(cl.publicKey, i);
      cl.tunnelIps.forEach((text, j) => {
        const ip = parseIp(text);
        if (!ip) return;
        if (ip.family === 6 && c.tunnel.ipv6 === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['clients', i, 'tunnelIps', j],
            message: `an IPv6 tunnel address needs tunnel.ipv6 on the gateway, got ${describe(text)}`,
          });
        }
        if (!isTunnelIp(ip)) {
          ctx.addIssue({
            code: 'custom',
            path: ['clients', i, 'tunnelIps', j],
            message: `expected an address inside ${TUNNEL_V4.text} or ${TUNNEL_V6.text}, got ${describe(text)}`,
          });
        }
        const owner = tunnelIps.get(ip.text);
        if (owner !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['clients', i, 'tunnelIps', j],
            message: `${ip.text} is already used by ${owner}`,
          });
        } else tunnelIps.set(ip.text, `clients[${i}]`);
      });
      cl.resources.forEach((rid, j) => {
        if (!resourceIds.has(rid)) {
          const known = [...resourceIds.keys()].map((k) => JSON.stringify(k)).join(', ') || 'none';
          ctx.addIssue({
            code: 'custom',
            path: ['clients', i, 'resources', j],
            message: `expected the id of a resource (known: ${known}), got ${describe(rid)}`,
          });
        }
      });
    });
  });

type RawConfig = z.infer<typeof schema>;

export interface ParseOptions {
  /** Name used in messages (a file path); default `gateway config`. */
  source?: string;
  /** Directory `privateKeyFile` is relative to; default the source's directory, or the working directory. */
  baseDir?: string;
  /** How to read `privateKeyFile` (tests); default `fs.readFileSync`. */
  readFile?: (path: string) => string;
}

/** Validates a parsed YAML document (or an object); throws `ConfigError` listing every problem. */
export function parseGatewayConfig(raw: unknown, options: ParseOptions = {}): GatewayConfig {
  const source = options.source ?? 'gateway config';
  const result = schema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((iss) => {
        const where = formatPath(iss.path);
        return `${source}: ${where === '' ? '' : `${where}: `}${issueMessage(iss)}`;
      }),
    );
  }
  const c: RawConfig = result.data;
  let privateKey = c.privateKey;
  if (privateKey === undefined && c.privateKeyFile !== undefined) {
    const baseDir = options.baseDir ?? (options.source ? dirname(options.source) : process.cwd());
    privateKey = readPrivateKeyFile(source, c.privateKeyFile, baseDir, options.readFile);
  }
  const canon = (s: string) => parseIp(s)?.text ?? s;
  const ipv6Text = c.tunnel.ipv6 === undefined ? undefined : canon(c.tunnel.ipv6);
  return {
    source,
    privateKey: privateKey as string,
    listen: c.listen ?? DEFAULT_LISTEN,
    tunnel:
      ipv6Text === undefined
        ? { ipv4: canon(c.tunnel.ipv4) }
        : { ipv4: canon(c.tunnel.ipv4), ipv6: ipv6Text },
    device: c.device ?? DEFAULT_DEVICE,
    ...(c.nameservers === undefined ? {} : { nameservers: c.nameservers }),
    masquerade: c.masquerade ?? true,
    ...(c.metrics === undefined ? {} : { metrics: c.metrics }),
    resolution: {
      timeoutMs: c.resolution?.timeoutMs ?? DEFAULT_RESOLUTION.timeoutMs,
      maxInFlight: c.resolution?.maxInFlight ?? DEFAULT_RESOLUTION.maxInFlight,
      maxQueued: c.resolution?.maxQueued ?? DEFAULT_RESOLUTION.maxQueued,
    },
    limits: Object.fromEntries(
      Object.entries(DEFAULT_LIMITS).map(([k, v]) => [k, c.limits?.[k as keyof GatewayLimits] ?? v]),
    ) as unknown as GatewayLimits,
    resources: c.resources.map((r) => ({
      id: r.id,
      pattern: DomainPattern.parse(r.pattern),
      ipStack: r.ipStack ?? 'dual',
      ...(r.ports === undefined ? {} : { ports: r.ports.map((p) => p.trim().toLowerCase()) }),
      ...(r.allowDestinations === undefined
        ? {}
        : { allowDestinations: r.allowDestinations.map((t) => parseCidr(t) as Cidr) }),
    })),
    clients: c.clients.map((cl) => ({
      id: cl.id,
      publicKey: cl.publicKey,
      tunnelIps: cl.tunnelIps.map(canon),
      resources: [...new Set(cl.resources)],
    })),
  };
}

/** Parses YAML text; `source` names it in messages. */
export function parseGatewayYaml(text: string, options: ParseOptions = {}): GatewayConfig {
  const source = options.source ?? 'gateway config';
  return parseGatewayConfig(parseYamlText(text, source), { ...options, source });
}

/** Reads and validates a gateway.yaml. */
export function loadGatewayConfig(path: string, options: Omit<ParseOptions, 'source'> = {}): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`${path}: cannot read: ${(e as Error).message}`]);
  }
  return parseGatewayYaml(text, { ...options, source: path });
}
