// What the web tests share: a real brookd started for a test (its ports read from its listen
// lines), a TCP proxy that can cut every connection through it and refuse new ones for a
// while, and a deadline-bounded wait. Paths come from the environment that tests/web/run sets.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const BROOKD = process.env.BROOKD ?? new URL('../../build/release/tools/brookd', import.meta.url).pathname;
export const BROOK = process.env.BROOK ?? new URL('../../build/release/tools/brook', import.meta.url).pathname;

// Polls `condition` every 50 ms until it is true; throws `what` after `ms`.
export async function waitFor(condition, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// brookd with TCP and WebSocket listeners on free ports; `toml` goes in its config file. With
// `http` (an address such as 127.0.0.1:0) it also serves its HTTP side there, and with
// `consoleDir` the web console from that directory; `httpUrl` is then where it listens.
export async function startBroker(toml = '', { http, consoleDir } = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'brook-web-'));
  const config = path.join(dir, 'brookd.toml');
  await writeFile(config, `${toml}\n`);
  const args = ['--config', config, '--listen', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--shards', '2', '--no-pin'];
  if (http) args.push('--http', http);
  if (consoleDir) args.push('--http-console', consoleDir);
  const child = spawn(BROOKD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const started = () => /listening on ws:\/\/\S+/.test(stdout) && (!http || /listening on https?:\/\/\S+/.test(stdout));
  await waitFor(() => started() || child.exitCode !== null, 10_000, 'brookd to listen');
  if (child.exitCode !== null) throw new Error(`brookd exited: ${stderr}`);
  const tcp = stdout.match(/listening on (tcp:\/\/\S+)/)[1];
  const ws = stdout.match(/listening on ws:\/\/(\S+)/)[1];
  return {
    tcpUrl: tcp,
    wsPort: Number(ws.slice(ws.lastIndexOf(':') + 1)),
    httpUrl: http ? stdout.match(/listening on (https?:\/\/\S+)/)[1] : undefined,
    log: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await waitFor(() => child.exitCode !== null, 10_000, 'brookd to stop').catch(() => child.kill('SIGKILL'));
      }
      await rm(dir, { recursive: true, force: true });
      return stderr;
    },
  };
}

// `brook pub` of one VALUE to PATH (with `--type`, say, in `args`); resolves when it is acknowledged.
export function publish(tcpUrl, topicPath, value, args = []) {
  const child = spawn(BROOK, ['pub', '--url', tcpUrl, ...args, topicPath, value], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`brook pub ${topicPath}: ${stderr}`)))));
}

// A TCP proxy to 127.0.0.1:targetPort. cut(ms) destroys every connection through it and
// refuses new ones for `ms` (they are accepted and closed at once), as a dropped mobile
// connection would.
export async function startProxy(targetPort) {
  const pairs = new Set();
  let refuseUntil = 0;
  let cuts = 0;
  const server = net.createServer((client) => {
    if (Date.now() < refuseUntil) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    get cuts() { return cuts; },
    cut(ms) {
      cuts += 1;
      refuseUntil = Date.now() + ms;
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
    },
    close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

// `brook demo` publishing the odds feed to `tcpUrl` for `seconds`; resolves when it ends.
export function startFeed(tcpUrl, seconds, rate = 20) {
  const child = spawn(BROOK, ['demo', '--url', tcpUrl, '--rate', String(rate), '--duration', String(seconds)],
                      { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  return { done, kill: () => child.kill('SIGTERM') };
}
