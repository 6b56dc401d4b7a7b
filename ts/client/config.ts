import { dirname, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import {
  base64Key,
  ipAddress,
  ipOrSocketAddress,
  ipv4Address,
  ipv6Address,
  parseYamlText,
  readPrivateKeyFile,
  readYamlFile,
  socketAddress,
  validate,
} from '../config/fields.js';
import { DomainPattern } from '../net/pattern.js';

export interface ClientGateway {
  readonly id: string;
  readonly endpoint: string;
  readonly publicKey: string;
  /** The gateway's own tunnel addresses, accepted as sources besides proxy IPs. */
  readonly tunnelIps: readonly string[];
}

export interface ClientResource {
  readonly id: string;
  readonly pattern: string;
  readonly gateway: string;
  readonly ipStack: 'dual' | 'ipv4' | 'ipv6';
}

/** What the client holds for the names applications look up. */
export interface ClientLimits {
  /** Names holding proxy IPs at most; past it the least recently used gives its addresses up. */
  readonly names: number;
  /** A name neither queried nor carrying traffic for this long gives its proxy IPs up. */
  readonly nameIdleSeconds: number;
  /**
   * Names per gateway per second set up when they are looked up, before an application connects (burst: twice
   * this); past it a name is set up on its first packet. Half the gateway's default `controlPerSecond`.
   */
  readonly setupsAheadPerSecond: number;
}

export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  names: 16_384,
  nameIdleSeconds: 86_400,
  setupsAheadPerSecond: 50,
};

export interface ClientConfig {
  readonly source: string;
  readonly privateKey: string;
  readonly tunnel: { readonly ipv4: string; readonly ipv6?: string };
  /** Upstream resolvers; absent: the nameservers of /etc/resolv.conf. */
  readonly upstreamDns?: readonly string[];
  readonly manageDns: boolean;
  /** The resolv.conf that `manageDns` manages and the default upstream comes from. */
  readonly resolvConf: string;
  readonly stateFile?: string;
  readonly device: string;
  readonly statusSocket: string;
  readonly gateways: readonly ClientGateway[];
  readonly resources: readonly ClientResource[];
  readonly limits: ClientLimits;
}

export const DEFAULT_CLIENT_DEVICE = 'dnsnat0';
export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
export const DEFAULT_CLIENT_STATUS_SOCKET = '/run/dnsnat/client.sock';

const id = z.string().min(1).max(64);

const schema = z
  .strictObject({
    privateKey: base64Key.optional(),
    privateKeyFile: z.string().min(1).optional(),
    tunnel: z.strictObject({ ipv4: ipv4Address, ipv6: ipv6Address.optional() }),
    upstreamDns: z.array(ipOrSocketAddress).min(1).optional(),
    manageDns: z.boolean().optional(),
    resolvConf: z.string().min(1).optional(),
    stateFile: z.string().min(1).optional(),
    device: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'expected an interface name of 1-15 characters')
      .optional(),
    statusSocket: z.string().min(1).optional(),
    limits: z
      .strictObject({
        // Half the proxy range at most (262,111 names), so a free set is always found at once.
        names: z.number().int().min(1).max(262_111).optional(),
        nameIdleSeconds: z.number().int().min(1).optional(),
        setupsAheadPerSecond: z.number().int().min(1).optional(),
      })
      .optional(),
    gateways: z
      .array(
        z.strictObject({
          id,
          endpoint: socketAddress,
          publicKey: base64Key,
          tunnelIps: z.array(ipAddress).optional(),
        }),
      )
      .min(1),
    resources: z.array(
      z.strictObject({
        id,
        pattern: z.string().superRefine((p, ctx) => {
          try {
            DomainPattern.parse(p);
          } catch (e) {
            ctx.addIssue({ code: 'custom', message: `expected a domain pattern: ${(e as Error).message}` });
          }
        }),
        gateway: id,
        ipStack: z.enum(['dual', 'ipv4', 'ipv6']).optional(),
      }),
    ),
  })
  .superRefine((c, ctx) => {
    if ((c.privateKey === undefined) === (c.privateKeyFile === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['privateKey'],
        message: 'expected exactly one of privateKey or privateKeyFile',
      });
    }
    const gateways = new Set<string>();
    c.gateways.forEach((g, i) => {
      if (gateways.has(g.id))
        ctx.addIssue({
          code: 'custom',
          path: ['gateways', i, 'id'],
          message: `duplicate id ${JSON.stringify(g.id)}`,
        });
      gateways.add(g.id);
    });
    const resources = new Set<string>();
    c.resources.forEach((r, i) => {
      if (resources.has(r.id))
        ctx.addIssue({
          code: 'custom',
          path: ['resources', i, 'id'],
          message: `duplicate id ${JSON.stringify(r.id)}`,
        });
      resources.add(r.id);
      if (!gateways.has(r.gateway)) {
        ctx.addIssue({
          code: 'custom',
          path: ['resources', i, 'gateway'],
          message: `expected the id of a gateway (${[...gateways].map((g) => JSON.stringify(g)).join(', ')}), got ${JSON.stringify(r.gateway)}`,
        });
      }
    });
  });

export interface ClientParseOptions {
  source?: string;
  baseDir?: string;
  readFile?: (path: string) => string;
}

export function parseClientConfig(raw: unknown, options: ClientParseOptions = {}): ClientConfig {
  const source = options.source ?? 'client config';
  const c = validate(schema, raw, source);
  let privateKey = c.privateKey;
  if (privateKey === undefined && c.privateKeyFile !== undefined) {
    privateKey = readPrivateKeyFile(
      source,
      c.privateKeyFile,
      options.baseDir ?? process.cwd(),
      options.readFile,
    );
  }
  return {
    source,
    privateKey: privateKey as string,
    tunnel:
      c.tunnel.ipv6 === undefined ? { ipv4: c.tunnel.ipv4 } : { ipv4: c.tunnel.ipv4, ipv6: c.tunnel.ipv6 },
    ...(c.upstreamDns ? { upstreamDns: c.upstreamDns } : {}),
    manageDns: c.manageDns ?? false,
    resolvConf: resolvePath(options.baseDir ?? process.cwd(), c.resolvConf ?? DEFAULT_RESOLV_CONF),
    ...(c.stateFile ? { stateFile: resolvePath(options.baseDir ?? process.cwd(), c.stateFile) } : {}),
    device: c.device ?? DEFAULT_CLIENT_DEVICE,
    statusSocket: c.statusSocket ?? DEFAULT_CLIENT_STATUS_SOCKET,
    gateways: c.gateways.map((g) => ({
      id: g.id,
      endpoint: g.endpoint,
      publicKey: g.publicKey,
      tunnelIps: g.tunnelIps ?? [],
    })),
    resources: c.resources.map((r) => ({
      id: r.id,
      pattern: r.pattern,
      gateway: r.gateway,
      ipStack: r.ipStack ?? 'dual',
    })),
    limits: {
      names: c.limits?.names ?? DEFAULT_CLIENT_LIMITS.names,
      nameIdleSeconds: c.limits?.nameIdleSeconds ?? DEFAULT_CLIENT_LIMITS.nameIdleSeconds,
      setupsAheadPerSecond: c.limits?.setupsAheadPerSecond ?? DEFAULT_CLIENT_LIMITS.setupsAheadPerSecond,
    },
  };
}

/** Parses YAML text; `source` names it in messages. */
export function parseClientYaml(text: string, options: ClientParseOptions = {}): ClientConfig {
  return parseClientConfig(parseYamlText(text, options.source ?? 'client config'), options);
}

export function loadClientConfig(path: string): ClientConfig {
  return parseClientConfig(readYamlFile(path), { source: path, baseDir: dirname(resolvePath(path)) });
}
