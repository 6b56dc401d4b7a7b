import { describe, expect, it } from 'vitest';
import { parseClientConfig } from '../../ts/client/config.js';
import { managedResolvConf, nameservers, SENTINEL_V4 } from '../../ts/client/resolv-conf.js';
import { ConfigError } from '../../ts/config/fields.js';

const key = Buffer.alloc(32, 7).toString('base64');
const valid = {
  privateKey: key,
  tunnel: { ipv4: '100.64.0.2', ipv6: 'fd00:2021:1111::2' },
  upstreamDns: ['10.1.0.53'],
  gateways: [{ id: 'gw1', endpoint: '10.1.0.1:51820', publicKey: key }],
  resources: [{ id: 'web', pattern: '*.corp.example', gateway: 'gw1', ipStack: 'dual' }],
};

function problems(raw: unknown): string[] {
  try {
    parseClientConfig(raw, { source: 'client.yaml' });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('client.yaml', () => {
  it('accepts the design example and fills the defaults', () => {
    const c = parseClientConfig(valid, { source: 'client.yaml' });
    expect(c.manageDns).toBe(false);
    expect(c.device).toBe('dnsnat0');
    expect(c.resources[0]?.ipStack).toBe('dual');
    expect(c.gateways[0]?.tunnelIps).toEqual([]);
  });

  it('names the file, the field and the expectation', () => {
    const p = problems({ ...valid, gateways: [{ ...valid.gateways[0], publicKey: 'x' }] });
    expect(p).toEqual([
      'client.yaml: gateways[0].publicKey: expected a base64 WireGuard key (44 characters), got "x"',
    ]);
  });

  it('reports every problem at once', () => {
    const p = problems({ ...valid, tunnel: { ipv4: 'nope' }, upstreamDns: ['x'], manageDns: 'yes' });
    expect(p).toHaveLength(3);
    expect(p.join('\n')).toMatch(/tunnel\.ipv4: expected an IPv4 address, got "nope"/);
    expect(p.join('\n')).toMatch(/upstreamDns\[0\]: expected ip or ip:port/);
    expect(p.join('\n')).toMatch(/manageDns: expected boolean/);
  });

  it('rejects a resource that names an unknown gateway, a bad pattern and unknown fields', () => {
    const p = problems({
      ...valid,
      resources: [{ id: 'web', pattern: 'a..b', gateway: 'gw9' }],
      extra: 1,
    });
    expect(p.join('\n')).toMatch(
      /resources\[0\]\.gateway: expected the id of a gateway \("gw1"\), got "gw9"/,
    );
    expect(p.join('\n')).toMatch(/resources\[0\]\.pattern: expected a domain pattern/);
    expect(p.join('\n')).toMatch(/unknown field "extra"/);
  });

  it('wants exactly one of privateKey and privateKeyFile, and reads the file', () => {
    const { privateKey: _, ...rest } = valid;
    expect(problems(rest).join('\n')).toMatch(
      /privateKey: expected exactly one of privateKey or privateKeyFile/,
    );
    const c = parseClientConfig(
      { ...rest, privateKeyFile: 'k' },
      {
        source: 'client.yaml',
        baseDir: '/etc/dnsnat',
        readFile: (p) => (p === '/etc/dnsnat/k' ? `${key}\n` : ''),
      },
    );
    expect(c.privateKey).toBe(key);
    expect(() =>
      parseClientConfig({ ...rest, privateKeyFile: 'k' }, { source: 'client.yaml', readFile: () => 'junk' }),
    ).toThrow(/privateKeyFile: .* does not hold a base64 WireGuard key/);
  });
});

describe('resolv.conf handling', () => {
  it('takes the nameservers, never our own sentinel, drops zone ids', () => {
    const text = `# x\nnameserver 10.0.0.2\nnameserver ${SENTINEL_V4}\nnameserver fe80::1%eth0\nsearch corp\n`;
    expect(nameservers(text)).toEqual(['10.0.0.2', 'fe80::1']);
  });

  it('points at the sentinels and keeps search and options', () => {
    const out = managedResolvConf('nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n');
    expect(nameservers(out)).toEqual([]);
    expect(out).toContain(`nameserver ${SENTINEL_V4}`);
    expect(out).toContain('search corp.example');
    expect(out).toContain('options edns0');
    expect(out).not.toContain('10.0.0.2');
  });
});
