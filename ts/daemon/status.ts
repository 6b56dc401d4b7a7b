// `dnsnat status`: the running daemon answers one JSON document per
// connection on a local (Unix) socket; the CLI prints it.
import { existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';

export function serveStatus(path: string, snapshot: () => unknown): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true });
  // A socket file left by a crashed daemon would make listen() fail.
  if (existsSync(path)) unlinkSync(path);
  const server = createServer((socket) => {
    let body: string;
    try {
      body = JSON.stringify(snapshot());
    } catch (e) {
      body = JSON.stringify({ error: (e as Error).message });
    }
    socket.end(`${body}\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

export function readStatus(path: string, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (d) => {
      text += d.toString();
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(
        new Error(
          `${path}: cannot reach a running dnsnat (${(e as NodeJS.ErrnoException).code ?? e.message})`,
        ),
      );
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error(`${path}: answer is not JSON`));
      }
    });
  });
}
