import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  isPortRule,
  loadGatewayConfig,
  parseGatewayConfig,
  parseGatewayYaml,
} from '../../ts/gateway/config.js';

const GW_KEY = 'YOUxDD76EAbdkrEjgd0Y4py/j5O0TmxV+WJn4ToDDmc=';
const ALICE = 'j94dl3TnzOFymO2TF7GeJ2ev7qTp7QXCk5RbRIehKUA=';
const BOB = 'GORSExdMS2h85XY4zEnCx2eENvcJ4fgwJSDr+o+NdX4=';

const DESIGN_EXAMPLE = `
privateKey: ${GW_KEY}
listen: "0.0.0.0:51820"
tunnel: { ipv4: 100.64.0.1, ipv6: "fd00:2021:1111::1" }
nameservers: [10.2.0.53]          # optional; default: /etc/resolv.conf
masquerade: true                  # optional
resources:
  - { id: web, pattern: "*.corp.example", ipStack: dual, ports: ["tcp/80", "tcp/443", "udp/5353", "icmp"] }
clients:
  - { id: alice, publicKey: ${ALICE}, tunnelIps: [100.64.0.2, "fd00:2021:1111::2"], resources: [web] }
`;

function base(): Record<string, unknown> {
  return {
    privateKey: GW_KEY,
    tunnel: { ipv4: '100.64.0.1' },
    resources: [{ id: 'web', pattern: '*.corp.example' }],
    clients: [{ id: 'alice', publicKey: ALICE, tunnelIps: ['100.64.0.2'], resources: ['web'] }],
  };
}

function problems(raw: unknown): string[] {
  try {
    parseGatewayConfig(raw, { source: 'gateway.yaml' });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  throw new Error('expected the config to be rejected');
}

describe('gateway.yaml', () => {
  it('accepts the example of DESIGN §7 and fills defaults', () => {
    const c = parseGatewayYaml(DESIGN_EXAMPLE, { source: 'gateway.yaml' });
    expect(c.privateKey).toBe(GW_KEY);
    expect(c.listen).toBe('0.0.0.0:51820');
    expect(c.tunnel).toEqual({ ipv4: '100.64.0.1', ipv6: 'fd00:2021:1111::1' });
    expect(c.nameservers).toEqual(['10.2.0.53']);
    expect(c.masquerade).toBe(true);
    expect(c.metrics).toBeUndefined();
    expect(c.resolution).toEqual({ timeoutMs: 10_000, maxInFlight: 1_000, maxQueued: 10_000 });
    expect(c.resources[0]?.pattern.matches('app.corp.example')).toBe(true);
    expect(c.resources[0]?.ports).toEqual(['tcp/80', 'tcp/443', 'udp/5353', 'icmp']);
    expect(c.clients[0]).toEqual({
      id: 'alice',
      publicKey: ALICE,
      tunnelIps: ['100.64.0.2', 'fd00:2021:1111::2'],
      resources: ['web'],
    });
    const d = parseGatewayConfig(base());
    expect(d.resources[0]?.ipStack).toBe('dual');
    expect(d.resources[0]?.ports).toBeUndefined();
    expect(d.device).toBe('dnsnat-gw');
  });

  it('names file, field and expectation', () => {
    const raw = base();
    (raw.clients as Array<Record<string, unknown>>)[0] = {
      id: 'alice',
      publicKey: ALICE,
      tunnelIps: ['100.64.0.2', 'x'],
      resources: ['web'],
    };
    expect(problems(raw)).toEqual(['gateway.yaml: clients[0].tunnelIps[1]: expected an IP address, got "x"']);
  });

  it('lists every problem at once', () => {
    const got = problems({
      privateKey: 'short',
      tunnel: { ipv4: 'fd00::1' },
      listen: '0.0.0.0',
      resources: [
        { id: 'web', pattern: 'a..b', ipStack: 'both', ports: ['tcp/0'] },
        { id: 'web', pattern: '*.x.example', colour: 'red' },
      ],
      clients: [{ id: 'bob', publicKey: 42, tunnelIps: [], resources: 'web' }],
      extra: 1,
    });
    expect(got).toEqual(
      expect.arrayContaining([
        'gateway.yaml: privateKey: expected a base64 WireGuard key (44 characters), got "short"',
        'gateway.yaml: tunnel.ipv4: expected an IPv4 address, got "fd00::1"',
        'gateway.yaml: listen: expected ip:port (or [ipv6]:port), got "0.0.0.0"',
        expect.stringMatching(
          /^gateway\.yaml: resources\[0\]\.pattern: expected a domain pattern, got "a\.\.b": .*empty label/,
        ),
        'gateway.yaml: resources[0].ipStack: expected one of "dual", "ipv4", "ipv6", got "both"',
        'gateway.yaml: resources[0].ports[0]: expected tcp/PORT, udp/PORT, tcp/FROM-TO, udp/FROM-TO or icmp, got "tcp/0"',
        'gateway.yaml: resources[1]: unknown field "colour"',
        'gateway.yaml: clients[0].publicKey: expected string, got 42',
        'gateway.yaml: clients[0].tunnelIps: expected at least 1 entries',
        'gateway.yaml: clients[0].resources: expected array, got "web"',
        'gateway.yaml: unknown field "extra"',
      ]),
    );
  });

  it('checks what only the whole file can tell', () => {
    const raw = base();
    raw.resources = [
      { id: 'web', pattern: '*.corp.example' },
      { id: 'web', pattern: 'db.corp.example' },
    ];
    raw.clients = [
      { id: 'alice', publicKey: ALICE, tunnelIps: ['100.64.0.2'], resources: ['web', 'db'] },
      { id: 'alice', publicKey: ALICE, tunnelIps: ['100.64.0.2', '10.0.0.1', '100.64.0.1'], resources: [] },
    ];
    expect(problems(raw)).toEqual(
      expect.arrayContaining([
        'gateway.yaml: resources[1].id: duplicate id "web" (also resources[0])',
        'gateway.yaml: clients[0].resources[1]: expected the id of a resource (known: "web"), got "db"',
        'gateway.yaml: clients[1].id: duplicate id "alice" (also clients[0])',
        'gateway.yaml: clients[1].publicKey: the same key as clients[0]',
        'gateway.yaml: clients[1].tunnelIps[0]: 100.64.0.2 is already used by clients[0]',
        'gateway.yaml: clients[1].tunnelIps[1]: expected an address inside 100.64.0.0/11 or fd00:2021:1111::/107, got "10.0.0.1"',
        'gateway.yaml: clients[1].tunnelIps[2]: 100.64.0.1 is already used by tunnel (the gateway itself)',
      ]),
    );
  });

  it('needs exactly one of privateKey and privateKeyFile; reads the file relative to the config', () => {
    const raw = base();
    delete raw.privateKey;
    expect(problems(raw)).toEqual(['gateway.yaml: expected exactly one of privateKey or privateKeyFile']);
    expect(problems({ ...base(), privateKeyFile: 'k' })).toEqual([
      'gateway.yaml: expected exactly one of privateKey or privateKeyFile',
    ]);

    const dir = mkdtempSync(join(tmpdir(), 'dnsnat-config-'));
    writeFileSync(join(dir, 'gw.key'), `${GW_KEY}\n`);
    writeFileSync(
      join(dir, 'gateway.yaml'),
      DESIGN_EXAMPLE.replace(`privateKey: ${GW_KEY}`, 'privateKeyFile: gw.key'),
    );
    expect(loadGatewayConfig(join(dir, 'gateway.yaml')).privateKey).toBe(GW_KEY);

    writeFileSync(join(dir, 'bad.key'), 'nope\n');
    writeFileSync(
      join(dir, 'bad.yaml'),
      DESIGN_EXAMPLE.replace(`privateKey: ${GW_KEY}`, 'privateKeyFile: bad.key'),
    );
    expect(() => loadGatewayConfig(join(dir, 'bad.yaml'))).toThrow(
      /bad\.yaml: privateKeyFile: .*bad\.key" does not hold/,
    );
    writeFileSync(
      join(dir, 'gone.yaml'),
      DESIGN_EXAMPLE.replace(`privateKey: ${GW_KEY}`, 'privateKeyFile: gone.key'),
    );
    expect(() => loadGatewayConfig(join(dir, 'gone.yaml'))).toThrow(
      /gone\.yaml: privateKeyFile: cannot read/,
    );
  });

  it('reports YAML syntax errors, an empty file and a missing file with the file name', () => {
    expect(() => parseGatewayYaml('a: [1,', { source: 'g.yaml' })).toThrow(/^g\.yaml: not valid YAML/);
    expect(() => parseGatewayYaml('a: 1\na: 2\n', { source: 'g.yaml' })).toThrow(/^g\.yaml: not valid YAML/);
    expect(() => parseGatewayYaml('', { source: 'g.yaml' })).toThrow('g.yaml: the file is empty');
    expect(() => loadGatewayConfig('/nonexistent/gateway.yaml')).toThrow(
      /^\/nonexistent\/gateway\.yaml: cannot read/,
    );
  });

  it('an IPv6 client address needs an IPv6 gateway address', () => {
    const raw = base();
    raw.clients = [{ id: 'alice', publicKey: ALICE, tunnelIps: ['fd00:2021:1111::2'], resources: [] }];
    expect(problems(raw)).toEqual([
      'gateway.yaml: clients[0].tunnelIps[0]: an IPv6 tunnel address needs tunnel.ipv6 on the gateway, got "fd00:2021:1111::2"',
    ]);
  });

  it('canonicalises addresses and accepts the optional knobs', () => {
    const c = parseGatewayConfig({
      ...base(),
      tunnel: { ipv4: '100.64.0.1', ipv6: 'FD00:2021:1111:0:0:0:0:1' },
      metrics: '127.0.0.1:9109',
      nameservers: ['10.2.0.53:5353', '[2001:db8::53]:53', '2001:db8::54'],
      resolution: { timeoutMs: 2000, maxInFlight: 3, maxQueued: 0 },
      device: 'gw0',
      masquerade: false,
      clients: [{ id: 'bob', publicKey: BOB, tunnelIps: ['FD00:2021:1111:0::9'], resources: ['web', 'web'] }],
    });
    expect(c.tunnel.ipv6).toBe('fd00:2021:1111::1');
    expect(c.clients[0]?.tunnelIps).toEqual(['fd00:2021:1111::9']);
    expect(c.clients[0]?.resources).toEqual(['web']);
    expect(c.resolution).toEqual({ timeoutMs: 2000, maxInFlight: 3, maxQueued: 0 });
    expect(c.metrics).toBe('127.0.0.1:9109');
    expect(c.masquerade).toBe(false);
    expect(problems({ ...base(), metrics: '9109' })).toEqual([
      'gateway.yaml: metrics: expected ip:port (or [ipv6]:port), got "9109"',
    ]);
  });

  it('port rules follow the native grammar', () => {
    for (const ok of ['tcp/443', 'UDP/5000-5999', 'icmp', ' tcp/1 ', 'udp/65535'])
      expect(isPortRule(ok), ok).toBe(true);
    for (const bad of ['tcp', 'tcp/', 'tcp/0', 'tcp/70000', 'sctp/80', 'udp/9-1', 'tcp/a-b', '']) {
      expect(isPortRule(bad), bad).toBe(false);
    }
  });
});
