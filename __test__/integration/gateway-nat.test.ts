// The gateway's data path end to end: a client tunnel sends to proxy IPs, the
// gateway's NAT (dnsnat-core) translates them to a real server in a third
// namespace, the kernel forwards and masquerades, and replies come back
// translated to the proxy IP. Real TUN devices, WireGuard, curl, ping. Root.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';
import { call, counters, fixtures, siteTopology, startNatGateway } from '../support/topology.js';

const run = canRunPrivileged('gateway NAT integration tests');

describe.runIf(run)('gateway NAT through the tunnel', () => {
  const lab = new Lab('nat');
  let c: string;
  let g: string;
  let s: string;
  let client: JsonLineProcess;
  let gateway: JsonLineProcess;
  const kc = native.generateKeypair();
  const kg = native.generateKeypair();

  beforeAll(async () => {
    ({ c, g, s } = siteTopology(lab));
    const site = lab.node(s, join(fixtures, 'http-server.cjs'), {
      host: '198.18.2.2',
      port: 8080,
      name: 'site',
    });
    await site.waitFor((l) => l.ready === true, 10_000, 'site ready');

    gateway = await startNatGateway(lab, g, kg.privateKey, kc.publicKey);
    client = lab.node(c, join(fixtures, 'tunnel-node.cjs'), {
      tunnel: { name: 'dnsnat-c', privateKey: kc.privateKey, ipv4: '100.64.0.2', routes: ['100.96.0.0/11'] },
      peers: [
        {
          publicKey: kg.publicKey,
          endpoint: '198.18.0.1:51820',
          allowedIps: ['100.64.0.1/32', '100.96.0.0/11'],
        },
      ],
    });
    await client.waitFor((l) => l.ready === true, 10_000, 'client ready');
    await call(gateway, 'setMapping', kc.publicKey, '100.96.0.1', { realIp: '198.18.2.2' });
  });

  afterAll(() => lab.cleanup());

  it('an HTTP request to a proxy IP reaches the real server and its answer comes back', () => {
    const body = lab.exec(c, 'curl', ['-s', '--max-time', '10', 'http://100.96.0.1:8080/']);
    // The server saw the gateway's masqueraded address, not the client's.
    expect(body).toBe('hello from site; you are 198.18.2.1\n');
  });

  it('ping to a proxy IP is answered through the NAT', async () => {
    expect(lab.exec(c, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', '100.96.0.1'])).toMatch(/2 received/);
    expect(await call(gateway, 'natSessions', kc.publicKey)).toBeGreaterThanOrEqual(2);
  });

  it('a proxy IP without a real address gets ICMP unreachable and asks for resolution', async () => {
    await call(gateway, 'setMapping', kc.publicKey, '100.96.0.5', {});
    const r = lab.exec(c, 'ping', ['-c', '1', '-W', '3', '100.96.0.5'], { allowFail: true });
    expect(r).toBe(''); // ping exits non-zero: no echo reply
    const out = lab.exec(c, 'sh', ['-c', 'ping -c 1 -W 3 100.96.0.5 || true']);
    expect(out).toMatch(/Destination Host Unreachable/);
    await gateway.waitFor<{ event?: { kind: string; proxyIp?: string } }>(
      (l) => l.event?.kind === 'resolve-unmapped' && l.event.proxyIp === '100.96.0.5',
    );
  });

  it('a port the policy forbids is refused at once with an ICMP error, allowed ports pass', async () => {
    await call(gateway, 'setMapping', kc.publicKey, '100.96.0.6', {
      realIp: '198.18.2.2',
      ports: ['tcp/80'],
    });
    const before = await counters(gateway);
    const refused = lab.exec(c, 'sh', ['-c', 'curl -s --max-time 5 http://100.96.0.6:8080/; echo "exit=$?"']);
    // curl fails fast (7: could not connect) rather than timing out (28).
    expect(refused.trim()).toBe('exit=7');
    const after = await counters(gateway);
    expect(after.nat_icmp_errors_sent).toBeGreaterThan(before.nat_icmp_errors_sent ?? 0);
    await call(gateway, 'setMapping', kc.publicKey, '100.96.0.6', {
      realIp: '198.18.2.2',
      ports: ['tcp/8080', 'icmp'],
    });
    expect(lab.exec(c, 'curl', ['-s', '--max-time', '10', 'http://100.96.0.6:8080/'])).toContain(
      'hello from site',
    );
  });

  it('removing a mapping ends its traffic', async () => {
    expect(await call(gateway, 'removeMapping', kc.publicKey, '100.96.0.1')).toBe(true);
    const r = lab.exec(c, 'sh', ['-c', 'curl -s --max-time 3 http://100.96.0.1:8080/; echo "exit=$?"']);
    expect(r).not.toContain('hello from site');
    const after = await counters(gateway);
    expect(after.nat_drop_not_proxy_destination ?? 0).toBe(0);
  });

  it('rejects mappings that could route traffic to the wrong place', async () => {
    await expect(
      call(gateway, 'setMapping', kc.publicKey, '10.0.0.1', { realIp: '198.18.2.2' }),
    ).rejects.toThrow(/outside the proxy ranges/);
    await expect(
      call(gateway, 'setMapping', kc.publicKey, '100.96.0.7', { realIp: '2001:db8::1' }),
    ).rejects.toThrow(/family/);
    await expect(
      call(gateway, 'setMapping', kc.publicKey, '100.96.0.7', { ports: ['tcp/0'] }),
    ).rejects.toThrow(/ports: 'tcp\/0': port must be 1-65535/);
  });
});
