// Datagram loss for the tunnel between namespaces, one datagram at a time.
//
// The tunnel sends with UDP GSO: one send carries up to 64 KiB of datagrams,
// and between namespaces that super-datagram crosses the veth whole, so an
// nftables rule would see (and drop) it as one packet. A real link loses
// datagrams one by one. Limiting the veths to one segment per packet makes the
// kernel cut GSO sends into datagrams before they leave, and the rules sit on
// the receiving side's input hook, after that cut.
import type { Lab } from './netns.js';

/** Drops `percent`% of WireGuard datagrams (port 51820) arriving in each namespace; returns the undo. */
export function tunnelLoss(lab: Lab, namespaces: string[], percent: number): () => void {
  const veths = (ns: string) =>
    lab
      .exec(ns, 'ip', ['-o', 'link', 'show', 'type', 'veth'])
      .split('\n')
      .map((l) => /^\d+: ([^@:]+)/.exec(l)?.[1])
      .filter((d): d is string => d !== undefined);
  const drop = `numgen random mod 100 < ${percent} drop`;
  for (const ns of namespaces) {
    for (const dev of veths(ns)) lab.exec(ns, 'ip', ['link', 'set', 'dev', dev, 'gso_max_segs', '1']);
    lab.exec(ns, 'nft', [
      'add table inet loss; add chain inet loss in { type filter hook input priority 0; };' +
        ` add rule inet loss in udp dport 51820 ${drop}; add rule inet loss in udp sport 51820 ${drop}`,
    ]);
  }
  return () => {
    for (const ns of namespaces) {
      lab.exec(ns, 'nft', ['delete table inet loss'], { allowFail: true });
      for (const dev of veths(ns))
        lab.exec(ns, 'ip', ['link', 'set', 'dev', dev, 'gso_max_segs', '65535'], { allowFail: true });
    }
  };
}
