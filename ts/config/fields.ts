// Field types and error formatting shared by client.yaml and gateway.yaml.
//
// Every config error names the file, the field and what was expected, one
// line per problem, all problems at once:
//   client.yaml: gateways[0].publicKey: expected a base64 WireGuard key (44 characters), got "x"
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseIp, parseSocketAddress } from '../net/ip.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

const KEY = /^[A-Za-z0-9+/]{43}=$/;
export const isWireguardKey = (s: string) => KEY.test(s) && Buffer.from(s, 'base64').length === 32;

const got = (iss: { input?: unknown }) => `got ${describeValue(iss.input)}`;

export const base64Key = z.string().refine(isWireguardKey, {
  error: (iss) => `expected a base64 WireGuard key (44 characters), ${got(iss)}`,
});
export const ipAddress = z.string().refine((s) => parseIp(s) !== undefined, {
  error: (iss) => `expected an IP address, ${got(iss)}`,
});
export const ipv4Address = z.string().refine((s) => parseIp(s)?.family === 4, {
  error: (iss) => `expected an IPv4 address, ${got(iss)}`,
});
export const ipv6Address = z.string().refine((s) => parseIp(s)?.family === 6, {
  error: (iss) => `expected an IPv6 address, ${got(iss)}`,
});
export const socketAddress = z.string().refine((s) => parseSocketAddress(s) !== undefined, {
  error: (iss) => `expected ip:port (or [ipv6]:port), ${got(iss)}`,
});
export const ipOrSocketAddress = z
  .string()
  .refine((s) => parseIp(s) !== undefined || parseSocketAddress(s) !== undefined, {
    error: (iss) => `expected ip or ip:port, ${got(iss)}`,
  });

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

export function issueMessage(iss: z.core.$ZodIssue): string {
  const input = (iss as { input?: unknown }).input;
  switch (iss.code) {
    case 'invalid_type':
      if (input === undefined) return `missing (expected ${iss.expected})`;
      return `expected ${iss.expected}, got ${describeValue(input)}`;
    case 'invalid_value':
      return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(input)}`;
    case 'unrecognized_keys':
      return `unknown field${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    case 'too_small':
      if (iss.origin === 'array') return `expected at least ${String(iss.minimum)} entries`;
      if (iss.origin === 'string') return 'expected a non-empty string';
      return `expected a number ${iss.inclusive ? '>=' : '>'} ${String(iss.minimum)}, got ${describeValue(input)}`;
    case 'invalid_format':
      return iss.message;
    default:
      return iss.message;
  }
}

/** Validates `raw` with `schema`, or throws a ConfigError naming `source` and every failing field. */
export function validate<T>(schema: z.ZodType<T>, raw: unknown, source: string): T {
  // reportInput: without it zod 4 leaves `input` out of issues, and a wrong
  // value would be reported as a missing one.
  const r = schema.safeParse(raw, { reportInput: true });
  if (r.success) return r.data;
  throw new ConfigError(
    r.error.issues.map((iss) => `${source}: ${formatPath(iss.path) || '(top level)'}: ${issueMessage(iss)}`),
  );
}

/**
 * Reads `privateKeyFile` (relative to `baseDir`) and checks it holds a key;
 * errors name the config (`source`) and the file.
 */
export function readPrivateKeyFile(
  source: string,
  file: string,
  baseDir: string,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): string {
  const path = resolvePath(baseDir, file);
  let text: string;
  try {
    text = readFile(path).trim();
  } catch (e) {
    throw new ConfigError([
      `${source}: privateKeyFile: cannot read ${JSON.stringify(path)}: ${(e as Error).message}`,
    ]);
  }
  if (!isWireguardKey(text)) {
    throw new ConfigError([
      `${source}: privateKeyFile: ${JSON.stringify(path)} does not hold a base64 WireGuard key`,
    ]);
  }
  return text;
}

/** Parses YAML text; errors name `source` (and the line, for syntax errors). */
export function parseYamlText(text: string, source: string): unknown {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    throw new ConfigError([`${source}: not valid YAML: ${(e as Error).message.split('\n')[0]}`]);
  }
  if (raw === null || raw === undefined) throw new ConfigError([`${source}: the file is empty`]);
  return raw;
}

/** Reads and parses a YAML file; errors name the file (and line, for syntax errors). */
export function readYamlFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`${path}: cannot read: ${(e as Error).message}`]);
  }
  return parseYamlText(text, path);
}
