// A dnsnat Tunnel inside a network namespace for the benchmarks, driven over stdin/stdout with JSON lines.
// Like __test__/fixtures/tunnel-node.cjs, except that events are counted, not printed: at tens of thousands
// of DNS queries per second, printing one line per event would measure the printing.
//
// Commands: {"call": ["method", ...args]} → {"call", "result"} or {"call", "error"};
// {"counters": true} → {"counters", "events"}; {"stop": true}.
const { Tunnel } = require('../index.js');
const { createInterface } = require('node:readline');

const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main() {
  const opts = JSON.parse(process.argv[2]);
  const events = {};
  const tunnel = await Tunnel.create(opts.tunnel, (batch) => {
    for (const e of batch) events[e.kind] = (events[e.kind] ?? 0) + 1;
  });
  for (const p of opts.peers ?? []) tunnel.addPeer(p);
  out({ ready: true, port: tunnel.localPort, publicKey: tunnel.publicKey });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const cmd = JSON.parse(line);
    try {
      if (cmd.call) {
        const [method, ...args] = cmd.call;
        out({ call: method, result: tunnel[method](...args) ?? null });
      } else if (cmd.counters) {
        out({ counters: tunnel.counters(), events });
      } else if (cmd.stop) {
        tunnel.stop();
        rl.close();
        process.stdin.destroy();
        out({ stopped: true });
      }
    } catch (e) {
      out({ call: cmd.call?.[0], error: String(e.message) });
    }
  });
}

main().catch((e) => {
  out({ fatal: String(e.message) });
  process.exit(1);
});
