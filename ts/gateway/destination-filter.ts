// Which real addresses the gateway may NAT to. A name is only as trustworthy as the DNS that answers for it:
// a public name can be made to resolve to 127.0.0.1, to the cloud's metadata service or to the gateway's own
// addresses (DNS rebinding), and without this check any client allowed a wildcard would reach them through
// the gateway. So the addresses below are refused unless the resource explicitly allows a range that holds
// them (`allowDestinations`), and a name that resolves only to refused addresses answers `inactive` with
// `destination-not-allowed`. Pure: the caller supplies the gateway's own addresses.
import {
  type Cidr,
  cidrContains,
  type Ip,
  PROXY_V4,
  PROXY_V6,
  parseCidr,
  parseIp,
  TUNNEL_V4,
  TUNNEL_V6,
} from '../net/ip.js';

/** Why an address is refused. */
export type RefusedDestination =
  | 'unspecified'
  | 'loopback'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'cloud-metadata'
  | 'tunnel-range'
  | 'gateway-address';

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`bad built-in prefix ${text}`);
  return c;
}

/** Ranges refused everywhere, most specific first (metadata addresses sit inside link-local). */
const REFUSED: ReadonlyArray<readonly [Cidr, RefusedDestination]> = [
  [cidr('169.254.169.254/32'), 'cloud-metadata'], // AWS, GCP, Azure, OpenStack, ...
  [cidr('100.100.100.200/32'), 'cloud-metadata'], // Alibaba Cloud
  [cidr('fd00:ec2::254/128'), 'cloud-metadata'], // AWS over IPv6
  [cidr('0.0.0.0/8'), 'unspecified'],
  [cidr('127.0.0.0/8'), 'loopback'],
  [cidr('169.254.0.0/16'), 'link-local'],
  [cidr('224.0.0.0/4'), 'multicast'],
  [cidr('255.255.255.255/32'), 'broadcast'],
  [cidr('240.0.0.0/4'), 'reserved'],
  [cidr('::/128'), 'unspecified'],
  [cidr('::1/128'), 'loopback'],
  [cidr('fe80::/10'), 'link-local'],
  [cidr('ff00::/8'), 'multicast'],
  // The tunnel's own ranges: a real address there would loop traffic back into the tunnel.
  [TUNNEL_V4, 'tunnel-range'],
  [TUNNEL_V6, 'tunnel-range'],
  [PROXY_V4, 'tunnel-range'],
  [PROXY_V6, 'tunnel-range'],
];

const MAPPED_V4 = cidr('::ffff:0:0/96');

/** The IPv4 address inside an IPv4-mapped IPv6 one, which reaches the same host. */
function unmapped(ip: Ip): Ip {
  if (ip.family !== 6 || !cidrContains(MAPPED_V4, ip)) return ip;
  return parseIp([24n, 16n, 8n, 0n].map((s) => ((ip.value >> s) & 0xffn).toString()).join('.')) as Ip;
}

export class DestinationFilter {
  private own = new Set<string>();

  /** The gateway's own addresses (every interface); refreshed by the caller when they may have changed. */
  setGatewayAddresses(texts: Iterable<string>): void {
    const next = new Set<string>();
    for (const t of texts) {
      const ip = parseIp(t);
      if (ip) next.add(unmapped(ip).text);
    }
    this.own = next;
  }

  /** Why `ip` must not be a NAT destination, or undefined when it may; `allow` lists the resource's exceptions. */
  refuses(ip: Ip, allow: readonly Cidr[] = []): RefusedDestination | undefined {
    const target = unmapped(ip);
    if (allow.some((c) => cidrContains(c, target))) return undefined;
    if (this.own.has(target.text)) return 'gateway-address';
    for (const [range, why] of REFUSED) if (cidrContains(range, target)) return why;
    return undefined;
  }
}
