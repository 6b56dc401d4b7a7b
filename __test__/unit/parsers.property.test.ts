// Property tests of every parser of untrusted input (control bodies from a peer, client.yaml, gateway.yaml,
// the client's state file): whatever the text or value, each one fails only with its own typed error (or a
// typed "undefined"), never a TypeError/RangeError from deep inside, and whatever it accepts has the promised
// shape. Callers count and drop on the typed error; any other exception would crash the client or gateway.
import fc from 'fast-check';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { parseClientConfig, parseClientYaml } from '../../ts/client/config.js';
import { parseState, StateFileError } from '../../ts/client/state-file.js';
import { ConfigError } from '../../ts/config/fields.js';
import { parseGatewayConfig, parseGatewayYaml } from '../../ts/gateway/config.js';
import {
  type ControlMessage,
  ControlMessageError,
  encodeControl,
  MessageType,
  parseControl,
  parseReceivedAssignedIps,
} from '../../ts/protocol/control.js';

type Outcome<T, E> = { ok: true; value: T } | { ok: false; error: E };

/** Runs `fn`; an exception that is not an `ErrorClass` fails the property with a readable description. */
function expectOnly<T, E>(ErrorClass: abstract new (...args: never[]) => E, fn: () => T): Outcome<T, E> {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof ErrorClass) return { ok: false, error: e };
    const kind = (e as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof e;
    return expect.fail(
      `expected only ${ErrorClass.name}, got ${kind}: ${(e as Error)?.message ?? String(e)}`,
    );
  }
}

/** Strings heavy in the characters parsers care about (separators, quotes, wildcards, newlines, NUL). */
const nastyString = fc.string({ unit: fc.constantFrom(...'aZ09*.-_?:/[]="\\\n é\0'), maxLength: 40 });
const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), nastyString, fc.json());
const flags = ['BigInt', 'BoxedValues', 'Date', 'Map', 'Set', 'NullPrototype', 'SparseArray', 'TypedArray'];
const exotic = fc.anything(Object.fromEntries(flags.map((f) => [`with${f}`, true])));
const anyValue = fc.oneof(exotic, fc.jsonValue(), nastyString, fc.string({ unit: 'binary' }));

const CONTROL_FIELDS = ['resource', 'domain', 'proxy_ips', 'seq', 'status', 'reason'] as const;
const fieldValue = fc.oneof(
  fc.jsonValue(),
  fc.string({ minLength: 1 }),
  fc.string({ minLength: 250, maxLength: 260 }),
  fc.constantFrom(-1, 0, 1, Number.MAX_SAFE_INTEGER, 2 ** 53, 1.5, -0, 1e308, 'active', 'inactive'),
  fc.array(fc.oneof(fc.string(), fc.jsonValue()), { maxLength: 20 }),
);
const controlObject = fc
  .record(Object.fromEntries(CONTROL_FIELDS.map((f) => [f, fieldValue])), { requiredKeys: [] })
  .map((o) => JSON.stringify(o));

const name255 = fc.string({ unit: 'binary', minLength: 1, maxLength: 127 }); // ≤ 254 UTF-16 units
const names = { resource: name255, domain: name255, seq: fc.maxSafeNat() };
const validControl: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc.record({
    type: fc.constant(MessageType.AssignedIps),
    body: fc.record({ ...names, proxy_ips: fc.array(fc.string(), { maxLength: 16 }) }),
  }),
  fc.record({
    type: fc.constant(MessageType.DomainStatus),
    body: fc.record(
      {
        ...names,
        status: fc.constantFrom('active' as const, 'inactive' as const),
        reason: fc.string({ unit: 'binary', maxLength: 100 }),
      },
      { requiredKeys: ['resource', 'domain', 'status', 'seq'] },
    ),
  }),
  fc.constant({ type: MessageType.Goodbye, body: {} }),
);

const isName = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length <= 255;
const isSeq = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

describe('control bodies', () => {
  it('parseControl throws only ControlMessageError, and what it returns has the promised shape', () => {
    const body = fc.oneof(text, controlObject);
    fc.assert(
      fc.property(fc.integer({ min: -5, max: 300 }), body, (type, t) => {
        const r = expectOnly(ControlMessageError, () => parseControl(type, t));
        if (!r.ok) return;
        const m = r.value;
        if (type < 0 || type > 2) {
          expect(m).toBeUndefined();
          return;
        }
        expect(m?.type).toBe(type);
        if (m?.type === MessageType.AssignedIps) {
          expect(isName(m.body.resource) && isName(m.body.domain) && isSeq(m.body.seq)).toBe(true);
          expect(Array.isArray(m.body.proxy_ips) && m.body.proxy_ips.length <= 16).toBe(true);
          expect(m.body.proxy_ips.every((ip) => typeof ip === 'string')).toBe(true);
        } else if (m?.type === MessageType.DomainStatus) {
          expect(isName(m.body.resource) && isName(m.body.domain) && isSeq(m.body.seq)).toBe(true);
          expect(['active', 'inactive']).toContain(m.body.status);
          if (m.body.reason !== undefined) expect(m.body.reason.length).toBeLessThanOrEqual(200);
        } else expect(m?.body).toEqual({});
      }),
      { numRuns: 5000 },
    );
  });

  it('encodeControl then parseControl gives every valid message back', () => {
    fc.assert(
      fc.property(validControl, (m) => {
        const encoded = expectOnly(ControlMessageError, () => encodeControl(m));
        if (!encoded.ok) return; // over the 1,200-byte framing limit
        expect(parseControl(m.type, encoded.value)).toEqual(m);
      }),
      { numRuns: 500 },
    );
  });

  it("parseReceivedAssignedIps (the gateway's reader) fails only with ControlMessageError", () => {
    fc.assert(
      fc.property(fc.oneof(text, controlObject), (t) => {
        const r = expectOnly(ControlMessageError, () => parseReceivedAssignedIps(t));
        if (!r.ok) return;
        expect(typeof r.value.resource === 'string' && typeof r.value.domain === 'string').toBe(true);
        expect(isSeq(r.value.seq)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});

const KEY = Buffer.alloc(32, 7).toString('base64');
const ALICE = 'j94dl3TnzOFymO2TF7GeJ2ev7qTp7QXCk5RbRIehKUA=';
const VALID_CLIENT = {
  privateKey: KEY,
  tunnel: { ipv4: '100.64.0.2', ipv6: 'fd00:2021:1111::2' },
  upstreamDns: ['10.1.0.53', '10.1.0.54:53'],
  manageDns: false,
  stateFile: 'state.json',
  device: 'dnsnat0',
  gateways: [{ id: 'gw1', endpoint: '10.1.0.1:51820', publicKey: ALICE, tunnelIps: ['100.64.0.1'] }],
  resources: [{ id: 'web', pattern: '*.corp.example', gateway: 'gw1', ipStack: 'dual' }],
};
const VALID_GATEWAY = {
  privateKey: KEY,
  listen: '0.0.0.0:51820',
  tunnel: { ipv4: '100.64.0.1', ipv6: 'fd00:2021:1111::1' },
  nameservers: ['10.2.0.53'],
  masquerade: true,
  metrics: '127.0.0.1:9100',
  resolution: { timeoutMs: 10_000, maxInFlight: 1_000, maxQueued: 10 },
  limits: { controlPerSecond: 100, sessionsPerClient: 1_000 },
  resources: [
    { id: 'web', pattern: '**.corp.example', ports: ['tcp/443', 'icmp'], allowDestinations: ['10.0.0.0/8'] },
  ],
  clients: [
    { id: 'alice', publicKey: ALICE, tunnelIps: ['100.64.0.2', 'fd00:2021:1111::2'], resources: ['web'] },
  ],
};
const EXTRA_KEYS = ['privateKeyFile', 'privateKey', 'id', 'pattern', 'ipv6', 'ports', 'tunnelIps', 'x'];

type Path = (string | number)[];
/** Every path inside `v` (not the root), and the paths of its objects (where a key can be added). */
function paths(v: unknown, at: Path = [], out = { all: [] as Path[], objects: [[]] as Path[] }) {
  if (v === null || typeof v !== 'object') return out;
  for (const [k, child] of Object.entries(v)) {
    const p = [...at, Array.isArray(v) ? Number(k) : k];
    out.all.push(p);
    if (child !== null && typeof child === 'object' && !Array.isArray(child)) out.objects.push(p);
    paths(child, p, out);
  }
  return out;
}

type Mutation = { path: Path; del: boolean; value: unknown };
/** A valid config with a few fields replaced by anything, deleted, or added (privateKeyFile among them). */
function nearValid(valid: object): fc.Arbitrary<unknown> {
  const { all, objects } = paths(valid);
  const target = fc.oneof(
    fc.constantFrom(...all),
    fc.tuple(fc.constantFrom(...objects), fc.constantFrom(...EXTRA_KEYS)).map(([p, k]) => [...p, k]),
  );
  const mutation = fc.record({ path: target, del: fc.boolean(), value: anyValue });
  return fc.array(mutation, { minLength: 1, maxLength: 3 }).map((ms: Mutation[]) => {
    const root = structuredClone(valid);
    // The clone's own containers: a mutation never walks into (or alters) a value fast-check generated.
    const own = new WeakSet<object>();
    const collect = (v: unknown): void => {
      if (v !== null && typeof v === 'object') own.add(v) && Object.values(v).forEach(collect);
    };
    collect(root);
    const container = (v: unknown): v is object => v !== null && typeof v === 'object' && own.has(v);
    for (const { path, del, value } of ms) {
      let parent: unknown = root;
      for (const k of path.slice(0, -1)) parent = container(parent) ? Reflect.get(parent, k) : undefined;
      const last = path[path.length - 1] as string | number;
      if (!container(parent)) continue;
      if (!del) Reflect.set(parent, last, value);
      else if (Array.isArray(parent) && typeof last === 'number') parent.splice(last, 1);
      else Reflect.deleteProperty(parent, last);
    }
    return root;
  });
}

const options = {
  source: 'fuzz.yaml',
  baseDir: '/nonexistent',
  readFile: (): string => {
    throw new Error('no file');
  },
};

/** Fails only with a ConfigError whose every line names the source; a success is an object from that source. */
function checkConfig(parse: () => unknown): void {
  const r = expectOnly(ConfigError, parse);
  if (r.ok) {
    expect(typeof r.value === 'object' && r.value !== null).toBe(true);
    expect((r.value as { source: string }).source).toBe('fuzz.yaml');
  } else {
    const why = `a line of ${JSON.stringify(r.error.message)} does not start with the source`;
    for (const line of r.error.message.split('\n')) expect(line.startsWith('fuzz.yaml: '), why).toBe(true);
  }
}

describe.each([
  {
    name: 'client.yaml',
    valid: VALID_CLIENT,
    config: parseClientConfig,
    yaml: parseClientYaml,
    // Found by this test: a raw "\n" in the message (ts/client/config.ts, `got "${r.gateway}"`).
    found: { ...VALID_CLIENT, resources: [{ ...VALID_CLIENT.resources[0], gateway: '\n' }] },
  },
  {
    name: 'gateway.yaml',
    valid: VALID_GATEWAY,
    config: parseGatewayConfig,
    yaml: parseGatewayYaml,
    // Found by this test: a raw "\n" in the message (ts/gateway/config.ts, `known: ${known}`).
    found: { ...VALID_GATEWAY, resources: [{ ...VALID_GATEWAY.resources[0], id: '\n' }] },
  },
])('$name', ({ valid, config, yaml, found }) => {
  it('the valid example parses', () => {
    expect(config(valid, options).source).toBe('fuzz.yaml');
  });

  it('any value or YAML text fails only with a ConfigError naming the source', () => {
    // The yaml package reports unknown tags (`!x`) through process.emitWarning: keep the output readable.
    const quiet = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    onTestFinished(() => quiet.mockRestore());
    fc.assert(
      fc.property(anyValue, (raw) => checkConfig(() => config(raw, options))),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(text, (t) => checkConfig(() => yaml(t, options))),
      { numRuns: 1000 },
    );
  });

  it('a near-valid config fails only with a ConfigError, one line per problem, each naming the source', () => {
    fc.assert(
      fc.property(nearValid(valid), (raw) => checkConfig(() => config(raw, options))),
      { numRuns: 3000, examples: [[found]] },
    );
  });
});

describe('state file', () => {
  it('parseState throws only StateFileError; a success is version 1 with the promised fields', () => {
    const field = fc.oneof(fc.jsonValue(), fc.string(), fc.array(fc.string(), { maxLength: 4 }));
    const stateObject = fc
      .record(
        { version: fc.constantFrom(1, '1', 2, 1.5, null), proxyIpTable: field, upstreamDns: field },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o));
    fc.assert(
      fc.property(fc.oneof(text, stateObject), (t) => {
        const r = expectOnly(StateFileError, () => parseState(t, 'state.json'));
        if (!r.ok) {
          expect(r.error.message.startsWith('state.json: ')).toBe(true);
          return;
        }
        const s = r.value;
        expect(s.version).toBe(1);
        for (const k of Object.keys(s)) expect(['version', 'proxyIpTable', 'upstreamDns']).toContain(k);
        if (s.proxyIpTable !== undefined) expect(typeof s.proxyIpTable).toBe('string');
        if (s.upstreamDns !== undefined) expect(s.upstreamDns.every((d) => typeof d === 'string')).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});
