// Two real dnsnat tunnels in two network namespaces joined by veth: real TUN
// devices, real WireGuard crypto (boringtun), real kernel ping. Needs root.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import native from '../../ts/native.js';
import { tunnelLoss } from '../support/loss.js';
import { type JsonLineProcess, Lab } from '../support/netns.js';
import { canRunPrivileged } from '../support/privileges.js';

const fixture = join(__dirname, '..', 'fixtures', 'tunnel-node.cjs');
const run = canRunPrivileged('tunnel integration tests');

type Counters = Record<string, number>;

async function counters(p: JsonLineProcess): Promise<Counters> {
  const before = p.lines.length;
  p.send({ counters: true });
  const line = await p.waitFor<{ counters?: Counters }>(
    (l) => l.counters !== undefined && p.lines.indexOf(l) >= before,
    5000,
    'counters',
  );
  return line.counters as Counters;
}

describe.runIf(run)('WireGuard tunnel between two namespaces', () => {
  const lab = new Lab('tun');
  let a: string;
  let b: string;
  let pa: JsonLineProcess;
  let pb: JsonLineProcess;
  const ka = native.generateKeypair();
  const kb = native.generateKeypair();

  beforeAll(async () => {
    a = lab.netns('a');
    b = lab.netns('b');
    lab.link(a, ['198.18.0.1/24', '2001:db8::1/64'], b, ['198.18.0.2/24', '2001:db8::2/64']);
    pb = lab.node(b, fixture, bOptions());
    await pb.waitFor((l) => l.ready === true, 10_000, 'tunnel B ready');
    pa = lab.node(a, fixture, {
      tunnel: {
        name: 'dnsnat-a',
        privateKey: ka.privateKey,
        ipv4: '100.64.0.1',
        ipv6: 'fd00:2021:1111::1',
        routes: ['100.64.0.2/32', 'fd00:2021:1111::2/128'],
      },
      peers: [
        {
          publicKey: kb.publicKey,
          endpoint: '198.18.0.2:51820',
          allowedIps: ['100.64.0.2/32', 'fd00:2021:1111::2/128'],
        },
      ],
    });
    await pa.waitFor((l) => l.ready === true, 10_000, 'tunnel A ready');
  });

  const bOptions = () => ({
    tunnel: {
      name: 'dnsnat-b',
      privateKey: kb.privateKey,
      listen: '0.0.0.0:51820',
      ipv4: '100.64.0.2',
      ipv6: 'fd00:2021:1111::2',
      routes: ['100.64.0.1/32', 'fd00:2021:1111::1/128'],
    },
    // No endpoint: B learns A's address from A's authenticated handshake.
    peers: [{ publicKey: ka.publicKey, allowedIps: ['100.64.0.1/32', 'fd00:2021:1111::1/128'] }],
  });

  afterAll(() => lab.cleanup());

  it('carries IPv4 ping both ways through the encrypted tunnel', () => {
    const out = lab.exec(a, 'ping', ['-c', '3', '-i', '0.2', '-W', '3', '100.64.0.2']);
    expect(out).toMatch(/3 received/);
    const back = lab.exec(b, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', '100.64.0.1']);
    expect(back).toMatch(/2 received/);
  });

  it('carries IPv6 ping through the tunnel', () => {
    const out = lab.exec(a, 'ping', ['-6', '-c', '2', '-i', '0.2', '-W', '3', 'fd00:2021:1111::2']);
    expect(out).toMatch(/2 received/);
  });

  it('reports the handshake as a peer-up event on both sides', async () => {
    await pa.waitFor<{ event?: { kind: string; peer: string } }>(
      (l) => l.event?.kind === 'peer-up' && l.event.peer === kb.publicKey,
    );
    await pb.waitFor<{ event?: { kind: string; peer: string } }>(
      (l) => l.event?.kind === 'peer-up' && l.event.peer === ka.publicKey,
    );
  });

  it('delivers control messages to JavaScript and never to the device', async () => {
    const before = await counters(pb);
    const body = JSON.stringify({ resource: 'web', domain: 'app.corp.example', proxy_ips: [], seq: 7 });
    pa.send({ sendControl: [kb.publicKey, 0, body] });
    const got = await pb.waitFor<{ event?: { kind: string; messageType?: number; body?: string } }>(
      (l) => l.event?.kind === 'control' && l.event.body === body,
    );
    expect(got.event?.messageType).toBe(0);
    const after = await counters(pb);
    expect(after.control_rx).toBe((before.control_rx ?? 0) + 1);
    expect(after.tun_tx_packets).toBe(before.tun_tx_packets);
  });

  it('drops packets whose source the peer may not use (cryptokey routing)', async () => {
    lab.exec(a, 'ip', ['addr', 'add', '100.64.0.9/32', 'dev', 'dnsnat-a']);
    const before = await counters(pb);
    lab.exec(a, 'ping', ['-c', '2', '-i', '0.2', '-W', '1', '-I', '100.64.0.9', '100.64.0.2'], {
      allowFail: true,
    });
    const after = await counters(pb);
    expect(after.drop_source_not_allowed).toBeGreaterThanOrEqual((before.drop_source_not_allowed ?? 0) + 2);
  });

  it('drops and counts datagrams from unknown keys without answering', async () => {
    const stranger = native.generateKeypair();
    const before = await counters(pb);
    const pc = lab.node(a, fixture, {
      tunnel: {
        name: 'dnsnat-c',
        privateKey: stranger.privateKey,
        ipv4: '100.64.0.3',
        routes: ['100.64.0.22/32'],
      },
      peers: [{ publicKey: kb.publicKey, endpoint: '198.18.0.2:51820', allowedIps: ['100.64.0.22/32'] }],
    });
    await pc.waitFor((l) => l.ready === true);
    lab.exec(a, 'ping', ['-c', '1', '-W', '1', '-I', 'dnsnat-c', '100.64.0.22'], { allowFail: true });
    const after = await counters(pb);
    expect(after.drop_unknown_peer).toBeGreaterThan(before.drop_unknown_peer ?? 0);
    const c = await counters(pc);
    expect(c.udp_rx_datagrams).toBe(0);
    pc.send({ stop: true });
  });

  /** Sends `mib` MiB of random bytes over TCP from `from` to a sink at `host` in `to`; both hashes. */
  async function bulk(from: string, to: string, host: string, mib: number) {
    const sink = lab.node(to, join(__dirname, '..', 'fixtures', 'tcp-sink.cjs'), { host, port: 5201 });
    await sink.waitFor((l) => l.ready === true);
    const send = `const h = require('crypto').createHash('sha256');
      const s = require('net').connect(5201, '${host}', () => {
        let n = ${mib};
        (function w() { while (n > 0) { n--; const b = require('crypto').randomBytes(1 << 20); h.update(b);
          if (!s.write(b)) return s.once('drain', w); } s.end(); })();
      }); s.on('close', () => { console.log(h.digest('hex')); process.exit(0); });`;
    const sent = lab.exec(from, 'node', ['-e', send]).trim();
    const done = await sink.waitFor<{ received?: number; sha256?: string }>(
      (l) => l.received !== undefined,
      60_000,
      'sink total',
    );
    sink.child.kill();
    await sink.exited;
    return { sent, received: done.received, sha256: done.sha256 };
  }

  it('moves a bulk TCP transfer in batches: a burst per read, many datagrams per send', async () => {
    // This kernel has TUN offloads, so the tunnel uses them.
    expect(pa.lines.find((l) => (l as { ready?: boolean }).ready)).toMatchObject({ offload: true });
    const [a0, b0] = [await counters(pa), await counters(pb)];
    const mib = 32;
    const r = await bulk(a, b, '100.64.0.2', mib);
    expect(r.received).toBe(mib * 1024 * 1024);
    expect(r.sha256).toBe(r.sent);
    const [a1, b1] = [await counters(pa), await counters(pb)];
    const delta = (after: Counters, before: Counters, k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    // TSO: the kernel hands the TUN reader whole bursts of the TCP stream.
    const perRead = delta(a1, a0, 'tun_rx_packets') / delta(a1, a0, 'tun_rx_reads');
    // UDP GSO: one send carries many encrypted datagrams.
    const perSend = delta(a1, a0, 'udp_tx_datagrams') / delta(a1, a0, 'udp_tx_sends');
    // GRO / recvmmsg: one receive returns many.
    const perReceive = delta(b1, b0, 'udp_rx_datagrams') / delta(b1, b0, 'udp_rx_reads');
    expect(perRead).toBeGreaterThan(4);
    expect(perSend).toBeGreaterThan(4);
    expect(perReceive).toBeGreaterThan(2);
    // GRO on the way out: consecutive segments of the stream written as one.
    expect(delta(b1, b0, 'tun_tx_coalesced')).toBeGreaterThan(0);
    expect(delta(b1, b0, 'tun_tx_coalesced') * 4).toBeLessThan(delta(b1, b0, 'tun_tx_packets'));
    expect(delta(b1, b0, 'drop_oversized') + delta(b1, b0, 'drop_tun_write_error')).toBe(0);
  });

  it('keeps bulk TCP intact both ways when a tenth of the datagrams are lost', {
    timeout: 120_000,
  }, async () => {
    // Retransmissions and holes in the stream: what coalescing segments on
    // the way into the device must survive.
    const undo = tunnelLoss(lab, [a, b], 10);
    try {
      const up = await bulk(a, b, '100.64.0.2', 8);
      expect(up.received).toBe(8 * 1024 * 1024);
      expect(up.sha256).toBe(up.sent);
      const down = await bulk(b, a, '100.64.0.1', 8);
      expect(down.received).toBe(8 * 1024 * 1024);
      expect(down.sha256).toBe(down.sent);
    } finally {
      undo();
    }
  });

  it('after a peer restarts, resetPeer lets traffic flow again at once', async () => {
    expect(lab.exec(a, 'ping', ['-c', '1', '-W', '3', '100.64.0.2'])).toMatch(/1 received/);
    pb.send({ stop: true });
    await pb.exited;
    pb = lab.node(b, fixture, bOptions());
    await pb.waitFor((l) => l.ready === true, 10_000, 'tunnel B restarted');
    // A's session is dead; without a reset WireGuard would notice only after
    // its keepalive and rekey timeouts (~15 s), long past this ping's 3 s.
    pa.send({ call: ['resetPeer', kb.publicKey] });
    await pa.waitFor((l) => l.call === 'resetPeer' && l.result === true);
    expect(lab.exec(a, 'ping', ['-c', '1', '-W', '3', '100.64.0.2'])).toMatch(/1 received/);
  });

  it('a Tunnel.create that cannot have its port or its device name fails with that reason', () => {
    // B holds 0.0.0.0:51820 and the device dnsnat-b. Both failures come after the packet threads' runtimes
    // exist, which once made them fail with a tokio panic's message instead of the real one.
    const attempt = (name: string, listen: string) => `
      const { Tunnel } = require(${JSON.stringify(join(__dirname, '..', '..', 'index.js'))});
      Tunnel.create({ name: '${name}', privateKey: '${kb.privateKey}', ipv4: '100.64.0.7', listen: '${listen}' }, () => {})
        .then((t) => { t.stop(); console.log('created'); }, (e) => console.log(e.message));`;
    const run = (name: string, listen: string) =>
      lab.exec(b, 'sh', ['-c', `"${process.execPath}" -e "$0" 2>&1`, attempt(name, listen)]).trim();
    const port = run('dnsnat-x', '0.0.0.0:51820');
    expect(port).toMatch(/^cannot listen on 0\.0\.0\.0:51820: .*in use/i);
    const device = run('dnsnat-b', '0.0.0.0:0');
    expect(device).toMatch(
      /^cannot create TUN device 'dnsnat-b': .*busy.*another process holds a device of that name/i,
    );
    // B's own tunnel is untouched.
    expect(lab.exec(a, 'ping', ['-c', '1', '-W', '3', '100.64.0.2'])).toMatch(/1 received/);
  });

  it('a stopped tunnel has let go of its device and port: the same ones can be taken at once', () => {
    // stop() used to return before the runtime dropped the tasks that hold the device and the socket, so a
    // restart in the same breath failed with "Device or resource busy" (2 runs in 3 of this loop failed so).
    const script = `
      const { Tunnel } = require(${JSON.stringify(join(__dirname, '..', '..', 'index.js'))});
      (async () => {
        for (let i = 0; i < 50; i++) {
          const t = await Tunnel.create({ name: 'dnsnat-r', privateKey: '${kb.privateKey}', ipv4: '100.64.0.8', listen: '0.0.0.0:51999' }, () => {});
          t.stop();
        }
        console.log('restarted 50 times');
      })().catch((e) => console.log(e.message));`;
    const out = lab.exec(a, 'sh', ['-c', `"${process.execPath}" -e "$0" 2>&1`, script]).trim();
    expect(out).toBe('restarted 50 times');
    expect(lab.exec(a, 'ip', ['-o', 'link', 'show'])).not.toContain('dnsnat-r');
  });

  it('runs its packets on a thread per direction, the inbound one with a long slice; stop ends both', async () => {
    type Thread = { name: string; slice: number | null };
    type Line = { ready?: boolean; stopped?: boolean; threads: Thread[] };
    const ready = await pa.waitFor<Line>((l) => l.ready === true);
    const named = (name: string) => ready.threads.filter((t) => t.name === name);
    const [outbound, inbound] = [named('dnsnat-outbound'), named('dnsnat-inbound')];
    expect(outbound).toHaveLength(1);
    expect(inbound).toHaveLength(1);
    // The rest of the addon's work stays on the shared runtime.
    expect(named('dnsnat-rt').length).toBeGreaterThan(0);
    if (inbound[0]?.slice === null) {
      console.log('skipped the slice check: this kernel does not report se.slice (before 6.12)');
    } else {
      expect(inbound[0]?.slice).toBe(20_000_000);
      expect(outbound[0]?.slice).not.toBe(20_000_000);
    }
    pa.send({ stop: true });
    const stopped = await pa.waitFor<Line>((l) => l.stopped === true);
    const left = stopped.threads.map((t) => t.name);
    expect(left).not.toContain('dnsnat-outbound');
    expect(left).not.toContain('dnsnat-inbound');
  });

  it('stop removes the device and lets the process exit on its own', async () => {
    pb.send({ stop: true });
    await pb.waitFor((l) => l.stopped === true);
    // Exits by itself: the event callback was released, nothing keeps Node alive.
    expect(await pb.exited).toBe(0);
    const links = lab.exec(b, 'ip', ['-o', 'link', 'show']);
    expect(links).not.toContain('dnsnat-b');
  });
});
