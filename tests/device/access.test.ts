/**
 * The identity and security-model wrappers through the device itself (not only through
 * `serve`): a guest driver on the virtqueue attaches fids as root and as uid 1000 on one
 * session, over AccessBackend(MappedXattrBackend(MemoryBackend)), and gets what a Linux host
 * would give those users; opening a device node is ENXIO.
 */
import { describe, test, expect } from '@jest/globals';
import { createMachine } from '../../src/testing/machine.js';
import { MemoryBackend } from '../../src/backends/memory.js';
import { MappedXattrBackend } from '../../src/backends/security.js';
import { AccessBackend } from '../../src/backends/access.js';
import { P9ClientError } from '../../src/testing/p9/client.js';

const EPERM = 1, EACCES = 13, ENXIO = 6;
const O_RDONLY = 0, O_RDWR = 2;
const S_IFCHR = 0o20000, S_IFREG = 0o100000;
const A_UID = 0x2;

async function errnoOf(p: Promise<unknown>): Promise<number> {
  try { await p; return 0; } catch (e) { if (e instanceof P9ClientError) return e.errno; throw e; }
}

describe('AccessBackend over a mapped model, through the virtqueue', () => {
  test('root and uid 1000 on one session get what Linux gives them', async () => {
    const backend = new AccessBackend(new MappedXattrBackend(new MemoryBackend()), { groupsOf: (uid) => [uid] });
    const { client: c } = await createMachine({ backend });
    await c.version(65536);
    const root = c.allocFid(), user = c.allocFid();
    await c.attach(root, undefined, 'root', '', 0);
    await c.attach(user, undefined, 'u', '', 1000);
    const dir = c.allocFid();
    await c.walk(root, dir, []);
    await c.lcreate(dir, 'secret', O_RDWR, 0o600, 0);
    await c.mknod(root, 'null', S_IFCHR | 0o666, 1, 3, 0);
    const walk = async (from: number, name: string) => { const f = c.allocFid(); await c.walk(from, f, [name]); return f; };
    // uid 1000: no reading root's 0600 file, no chown, no device nodes
    expect(await errnoOf(c.lopen(await walk(user, 'secret'), O_RDONLY))).toBe(EACCES);
    expect(await errnoOf(c.setattr(await walk(user, 'secret'), { valid: A_UID, uid: 1000 }))).toBe(EPERM);
    expect(await errnoOf(c.mknod(user, 'null2', S_IFCHR | 0o666, 1, 3, 0))).toBe(EPERM);
    // root reads it; the node is never opened, for anyone
    expect(await errnoOf(c.lopen(await walk(root, 'secret'), O_RDONLY))).toBe(0);
    expect(await errnoOf(c.lopen(await walk(root, 'null'), O_RDWR))).toBe(ENXIO);
    // what the guest sees of the mapped metadata
    const st = await c.getattr(await walk(root, 'secret'));
    expect([st.uid, st.mode]).toEqual([0, S_IFREG | 0o600]);
  });
});
