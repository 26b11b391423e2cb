/**
 * Security models interoperate with QEMU byte for byte: a Linux guest (the QEMU kit's Debian
 * kernel) writes a tree through one server and a second guest checks it through the other.
 *   1. QEMU's own `-fsdev local,security_model=${model}` (virtio-9p-pci) makes the tree;
 *      `virtio9p serve --security-model mapped-xattr` serves it to the next guest.
 *   2. The other way round.
 * The tree (harness/linux-guest/guest-init, ninep.test=mktree / checktree): a directory and a
 * set-uid file with guest owners, a symlink, a block and a character device and a FIFO. On the
 * host both servers leave only regular files (0600) and directories (0700) owned by root, with
 * the guest's metadata in user.virtfs.{uid,gid,mode,rdev} or in .virtfs_metadata/NAME; the test
 * reads those bytes too.
 */
import { describe, test, expect, afterAll } from '@jest/globals';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { serve, tempDir } from '../clients/serve-util.js';
import { fsops } from '../../src/helper/fsops.js';

const root = new URL('../../', import.meta.url).pathname;
const R = path.join(root, '.cache/linux-guest');
const KERNEL = path.join(R, 'out/vmlinuz');
const INITRD = path.join(R, 'out/initramfs.cpio.gz');
const MK = ['mk-dir', 'mk-file', 'mk-link', 'mk-blk', 'mk-chr', 'mk-fifo'];
const CK = ['ck-dir', 'ck-file', 'ck-link', 'ck-blk', 'ck-chr', 'ck-fifo'];

type Via = { qemuExport: string } | { sock: string };

function bootGuest(model: string, test: 'mktree' | 'checktree', via: Via, tag: string): Promise<{ steps: Map<string, string>; out: string }> {
  const trans = 'qemuExport' in via ? 'virtio' : 'fd';
  const append = ['console=ttyS0', 'panic=-1', `ninep.trans=${trans}`, `ninep.test=${test}`, 'quiet'];
  const dev = 'qemuExport' in via
    ? ['-fsdev', `local,id=fs9,path=${via.qemuExport.replace(/,/g, ',,')},security_model=${model}`, '-device', 'virtio-9p-pci,fsdev=fs9,mount_tag=ninep']
    : ['-chardev', `socket,id=c9,path=${via.sock},server=off`, '-device', 'virtio-serial', '-device', 'virtserialport,chardev=c9,name=ninep'];
  const args = ['-accel', 'tcg', '-m', '512', '-nographic', '-no-reboot', '-kernel', KERNEL, '-initrd', INITRD,
    '-append', append.join(' '), ...dev];
  return new Promise((resolve, reject) => {
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    qemu.stdout!.on('data', (d) => { out += d; });
    qemu.stderr!.on('data', (d) => { out += d; });
    // a hang guard, not a speed check
    const guard = setTimeout(() => { out += '\n@@ TIMEOUT (killed)\n'; if (qemu.pid) process.kill(qemu.pid, 'SIGKILL'); }, 300000);
    qemu.once('error', (e) => { clearTimeout(guard); reject(e); });
    qemu.once('exit', () => {
      clearTimeout(guard);
      fs.mkdirSync(path.join(R, 'logs'), { recursive: true });
      fs.writeFileSync(path.join(R, 'logs', `interop-${tag}-console.log`), out);
      const steps = new Map<string, string>();
      for (const m of out.matchAll(/^@@ [\d.]+ STEP (\S+) (PASS|FAIL[^(]*)/gm)) steps.set(m[1]!, m[2]!.trim());
      resolve({ steps, out });
    });
  });
}

function expectSteps(run: { steps: Map<string, string>; out: string }, names: string[]): void {
  const got = names.map((n) => [n, run.steps.get(n) ?? 'missing']);
  if (got.some(([, r]) => r !== 'PASS')) console.log(run.out.split('\n').filter((l) => /^@@|^ {3}\|/.test(l)).join('\n'));
  expect(got).toEqual(names.map((n) => [n, 'PASS']));
}

/** What the host holds: type/permission bits and owner of each object, and its metadata. */
function hostView(model: string, dir: string): Record<string, string> {
  if (model === 'mapped-file') {
    const out: Record<string, string> = {};
    for (const name of ['d', 'f', 'sl', 'blk', 'chr', 'fifo']) {
      const st = fs.lstatSync(path.join(dir, 'tree', name));
      const meta = fs.readFileSync(path.join(dir, 'tree', '.virtfs_metadata', name), 'latin1');
      out[name] = `${st.mode.toString(8)} ${st.uid}:${st.gid} ${meta.trim().split('\n').join(' ')}`;
    }
    return out;
  }
  const F = fsops();
  const rootFd = F.openRoot(path.join(dir, 'tree'));
  const out: Record<string, string> = {};
  try {
    for (const name of ['d', 'f', 'sl', 'blk', 'chr', 'fifo']) {
      const st = fs.lstatSync(path.join(dir, 'tree', name));
      const x = ['uid', 'gid', 'mode', 'rdev'].map((k) => {
        const v = F.getxattr(rootFd, name, `user.virtfs.${k}`, 64);
        return typeof v === 'number' ? '-' : Buffer.from(v).toString('hex');
      });
      out[name] = `${(st.mode).toString(8)} ${st.uid}:${st.gid} ${x.join(' ')}`;
    }
  } finally { F.close(rootFd); }
  return out;
}

// QEMU's byte format: uid/gid/mode 4 bytes little-endian, rdev 8 bytes little-endian
const EXPECTED_FILE = {
  d: '40700 0:0 virtfs.uid=1002 virtfs.gid=1003 virtfs.mode=16873',
  f: '100600 0:0 virtfs.uid=1000 virtfs.gid=1001 virtfs.mode=35304',
  sl: '100600 0:0 virtfs.uid=1004 virtfs.gid=1005 virtfs.mode=41471',
  blk: '100600 0:0 virtfs.uid=0 virtfs.gid=0 virtfs.mode=24992 virtfs.rdev=1792',
  chr: '100600 0:0 virtfs.uid=0 virtfs.gid=0 virtfs.mode=8592 virtfs.rdev=259',
  fifo: '100600 0:0 virtfs.uid=0 virtfs.gid=0 virtfs.mode=4484 virtfs.rdev=0',
};
const EXPECTED_XATTR = {
  d: '40700 0:0 ea030000 eb030000 e9410000 -',
  f: '100600 0:0 e8030000 e9030000 e8890000 -',
  sl: '100600 0:0 ec030000 ed030000 ffa10000 -',
  blk: '100600 0:0 00000000 00000000 a0610000 0007000000000000',
  chr: '100600 0:0 00000000 00000000 90210000 0301000000000000',
  fifo: '100600 0:0 00000000 00000000 84110000 0000000000000000',
};

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });

describe.each([
  ['mapped-xattr', EXPECTED_XATTR],
  ['mapped-file', EXPECTED_FILE],
])('%s: QEMU and virtio9p serve read each other\'s trees', (model, expected) => {
  test('the kernel and initramfs are prepared', () => {
    expect([fs.existsSync(KERNEL), fs.existsSync(INITRD)]).toEqual([true, true]);
  });

  test('QEMU writes, we read', async () => {
    const exp = tempDir('interop-q2o');
    dirs.push(exp);
    expectSteps(await bootGuest(model, 'mktree', { qemuExport: exp }, `${model}-qemu-mktree`), MK);
    expect(hostView(model, exp)).toEqual(expected);
    const srv = await serve(exp, 'local', ['--security-model', model]);
    try {
      expectSteps(await bootGuest(model, 'checktree', { sock: srv.sock }, `${model}-ours-checktree`), CK);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    expect(hostView(model, exp)).toEqual(expected); // reading changed nothing
  }, 600000);

  test('we write, QEMU reads', async () => {
    const exp = tempDir('interop-o2q');
    dirs.push(exp);
    const srv = await serve(exp, 'local', ['--security-model', model]);
    try {
      expectSteps(await bootGuest(model, 'mktree', { sock: srv.sock }, `${model}-ours-mktree`), MK);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    expect(hostView(model, exp)).toEqual(expected);
    expectSteps(await bootGuest(model, 'checktree', { qemuExport: exp }, `${model}-qemu-checktree`), CK);
  }, 600000);
});
