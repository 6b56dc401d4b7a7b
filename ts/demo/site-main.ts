// Runs inside the demo's site namespace: the site's DNS server and its HTTP
// service. Prints one JSON line when both listen.
import { createServer } from 'node:http';
import { serveSiteDns } from './site-dns.js';

const { host, records } = JSON.parse(process.argv[2] ?? '{}') as {
  host: string;
  records: Record<string, string[]>;
};

async function main(): Promise<void> {
  await serveSiteDns(host, 53, records, 30);
  const http = createServer((req, res) => {
    res.end(
      `hello from the site service (${req.headers.host ?? '?'}); you came from ${req.socket.remoteAddress}\n`,
    );
  });
  await new Promise<void>((resolve) => http.listen(80, host, resolve));
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`site: ${(e as Error).message}\n`);
  process.exit(1);
});
