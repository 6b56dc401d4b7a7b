// What several integration tests share: the client — gateway — site
// topology, and driving the tunnel fixture (`fixtures/tunnel-node.cjs`).
import { join } from 'node:path';
import type { JsonLineProcess, Lab } from './netns.js';

export const fixtures = join(__dirname, '..', 'fixtures');

export interface Topology {
  /** Client namespace, 198.18.0.2. */
  c: string;
  /** Gateway namespace, 198.18.0.1 towards the client, 198.18.2.1 towards the site. */
  g: string;
  /** Site namespace, 198.18.2.2. */
  s: string;
}

/** Three namespaces in a row; the gateway forwards and masquerades tunnel sources, as `masquerade: true` does. */
export function siteTopology(lab: Lab): Topology {
  const c = lab.netns('c');
  const g = lab.netns('g');
  const s = lab.netns('s');
  lab.link(c, ['198.18.0.2/24'], g, ['198.18.0.1/24']);
  lab.link(g, ['198.18.2.1/24'], s, ['198.18.2.2/24']);
  lab.exec(g, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  lab.exec(g, 'nft', [
    'add table ip dnsnat; add chain ip dnsnat post { type nat hook postrouting priority 100; };' +
      ' add rule ip dnsnat post ip saddr 100.64.0.0/11 masquerade',
  ]);
  return { c, g, s };
}

/** A gateway tunnel in `ns` that NATs for the client key, listening on 198.18.0.1:51820. */
export async function startNatGateway(
  lab: Lab,
  ns: string,
  gatewayPrivateKey: string,
  clientPublicKey: string,
): Promise<JsonLineProcess> {
  const p = lab.node(ns, join(fixtures, 'tunnel-node.cjs'), {
    tunnel: {
      name: 'dnsnat-g',
      privateKey: gatewayPrivateKey,
      listen: '0.0.0.0:51820',
      ipv4: '100.64.0.1',
      routes: ['100.64.0.2/32'],
    },
    peers: [{ publicKey: clientPublicKey, allowedIps: ['100.64.0.2/32'], nat: true }],
  });
  await p.waitFor((l) => l.ready === true, 10_000, 'gateway tunnel ready');
  return p;
}

/** Calls a method of the fixture's Tunnel and returns its result, or throws its error. */
export async function call(p: JsonLineProcess, method: string, ...args: unknown[]): Promise<unknown> {
  const before = p.lines.length;
  p.send({ call: [method, ...args] });
  const line = await p.waitFor<Record<string, unknown>>(
    (l) => l.call === method && p.lines.indexOf(l) >= before,
    5000,
    `${method} result`,
  );
  if (line.error) throw new Error(String(line.error));
  return line.result;
}

/** The fixture Tunnel's counters, read now. */
export async function counters(p: JsonLineProcess): Promise<Record<string, number>> {
  const before = p.lines.length;
  p.send({ counters: true });
  const line = await p.waitFor<Record<string, unknown>>(
    (l) => l.counters !== undefined && p.lines.indexOf(l) >= before,
    5000,
    'counters',
  );
  return line.counters as Record<string, number>;
}
