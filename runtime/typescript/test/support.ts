// What the integration tests share: a real brookd started for them (its ports read from its
// "listening on" lines), a TCP proxy whose connections a test can cut, and bounded waits.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/*.js -> the package directory.
const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Broker {
  tcpUrl: string;
  wsUrl: string;
  wsPort: number;
  stop(): Promise<void>;
}

export async function startBroker(timeoutMs = 10_000): Promise<Broker> {
  const binary = process.env.BROOKD ?? path.resolve(packageDir, '../../build/release/tools/brookd');
  const child: ChildProcess = spawn(binary, ['--listen', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--shards', '2', '--no-pin'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const urls = await new Promise<{ tcpUrl: string; wsUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => fail(`brookd did not print its listen lines within ${timeoutMs} ms`), timeoutMs);
    function fail(why: string): void {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${why} (${binary})\nstdout: ${stdout}\nstderr: ${stderr}`));
    }
    const exitedEarly = (code: number | null) => fail(`brookd exited with ${code}`);
    child.once('error', (e) => fail(`cannot start brookd: ${e.message}`));
    child.once('exit', exitedEarly);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const tcp = /listening on (tcp:\/\/[\d.]+:\d+)/.exec(stdout);
      const ws = /listening on (ws:\/\/[\d.]+:\d+)/.exec(stdout);
      if (tcp && ws) {
        clearTimeout(timer);
        child.off('exit', exitedEarly);
        resolve({ tcpUrl: tcp[1], wsUrl: `${ws[1]}/` });
      }
    });
  });

  return {
    ...urls,
    wsPort: Number(new URL(urls.wsUrl).port),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

// A TCP proxy in front of the broker: dropAll() cuts every connection through it at once,
// as a network failure would, while it goes on accepting new ones.
export class CuttableProxy {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  connections = 0;

  // Mutable: a test may point the proxy at another broker, as a restarted one would be.
  constructor(public targetPort: number) {
    this.server = net.createServer((client) => {
      ++this.connections;
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      for (const [socket, peer] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        this.sockets.add(socket);
        socket.on('error', () => peer.destroy());
        socket.on('close', () => {
          this.sockets.delete(socket);
          peer.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  dropAll(): number {
    const n = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    return n;
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
