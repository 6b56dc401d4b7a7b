// A tiny authoritative DNS server for the demo's site namespace, so `dnsnat
// demo` needs nothing installed: A and AAAA records from a table, NXDOMAIN for
// unknown names, an empty NOERROR for a known name without that type. Not a
// general DNS server: it answers one question per query and ignores the rest.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export interface SiteRecords {
  [name: string]: string[];
}

const TYPE_A = 1;
const TYPE_AAAA = 28;

function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => {
    b.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return b;
}

/** Builds the answer to `query`, or undefined when it cannot be read. */
export function answer(query: Buffer, records: SiteRecords, ttl: number): Buffer | undefined {
  if (query.length < 12 || query.readUInt16BE(4) < 1) return undefined;
  let off = 12;
  const labels: string[] = [];
  while (off < query.length) {
    const len = query[off] ?? 0;
    if (len === 0 || len > 63) break;
    labels.push(query.toString('ascii', off + 1, off + 1 + len));
    off += len + 1;
  }
  if (off + 5 > query.length || query[off] !== 0) return undefined;
  const qtype = query.readUInt16BE(off + 1);
  const questionEnd = off + 5;
  const name = labels.join('.').toLowerCase();
  const known = Object.hasOwn(records, name);
  const addrs = (records[name] ?? []).filter((ip) =>
    qtype === TYPE_A ? isIPv4(ip) : qtype === TYPE_AAAA && isIPv6(ip),
  );
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  const rd = (query[2] ?? 0) & 0x01;
  header[2] = 0x84 | rd; // QR, AA
  header[3] = known ? 0 : 3; // NOERROR or NXDOMAIN
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addrs.length, 6);
  const answers = addrs.map((ip) => {
    const data = ipBytes(ip);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
    rr.writeUInt16BE(data.length === 4 ? TYPE_A : TYPE_AAAA, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(data.length, 10);
    return Buffer.concat([rr, data]);
  });
  return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
}

export function serveSiteDns(host: string, port: number, records: SiteRecords, ttl = 60): Promise<Socket> {
  const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  socket.on('message', (msg, rinfo) => {
    const out = answer(msg, records, ttl);
    if (out) socket.send(out, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve(socket));
  });
}
