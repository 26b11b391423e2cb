/** Start `virtio9p serve` (the real CLI bundle) as a child process and stop it by its PID. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = new URL('../../', import.meta.url).pathname;
export const CLI = path.join(root, 'dist/cli.js');

export interface Served { proc: ChildProcess; address: string; sock: string; stderr: () => string; stop: () => Promise<number | null> }

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `v9p-${prefix}-`));
}

export interface ServeOptions {
  /** run the server as this uid:gid (through setpriv, no supplementary groups) */
  runAs?: [number, number];
}

export async function serve(exportDir: string, backend: string, extra: string[] = [], opts: ServeOptions = {}): Promise<Served> {
  const sockDir = tempDir('sock');
  const sock = path.join(sockDir, 's.sock');
  const argv = [CLI, 'serve', '--export', exportDir, '--backend', backend, '--listen', `unix:${sock}`, ...extra];
  let cmd = process.execPath;
  if (opts.runAs) {
    fs.chmodSync(sockDir, 0o777);
    argv.unshift(`--reuid=${opts.runAs[0]}`, `--regid=${opts.runAs[1]}`, '--clear-groups', process.execPath);
    cmd = 'setpriv';
  }
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stderr!.on('data', (d) => { err += d; });
  const address = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /on (unix:\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  return {
    proc, address, sock, stderr: () => err,
    stop: () => new Promise((resolve) => {
      if (proc.exitCode !== null) { resolve(proc.exitCode); return; }
      proc.once('exit', (code) => { fs.rmSync(sockDir, { recursive: true, force: true }); resolve(code); });
      process.kill(proc.pid!, 'SIGTERM');
    }),
  };
}
