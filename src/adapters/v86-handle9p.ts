/**
 * The light v86 adapter: plug our 9P server into stock v86 through its external-server hook,
 * `new V86({ filesystem: { handle9p } })`. v86 keeps its own virtio-9p PCI device and
 * virtqueue; each 9P request it pops is handed to `handle9p(request, reply)`, and we answer
 * through a stream session of our core (the same server as the virtio path and the socket
 * server). Replies may come later and out of order (asynchronous backends), as v86 allows.
 *
 *   const adapter = await V86Handle9p.create({ backend: new MemoryBackend() });
 *   const emulator = new V86({ ..., filesystem: { handle9p: adapter.handle9p } });
 *
 * The heavier adapter — our device in place of v86's, reading v86's guest RAM itself — is
 * V86Virtio9p (./v86-pci.ts).
 */
import { Virtio9pDevice } from '../device.js';
import type { Backend } from '../backends/backend.js';
import { Arena } from '../arena.js';
import type { WasmSource } from '../wasm/core.js';

export interface V86Handle9pOptions {
  backend: Backend;
  /** buffer space for requests in flight (default 16 MiB) */
  bufferSize?: number;
  /** the compiled core or its bytes (browsers) */
  wasm?: WasmSource;
}

const EAGAIN = 11;

export class V86Handle9p {
  private arena: Arena;
  private session: number;
  private waiting: [Uint8Array, (r: Uint8Array) => void][] = [];

  private constructor(readonly device: Virtio9pDevice) {
    this.arena = new Arena(0, device.guestSize);
    this.session = device.openSession();
  }

  static async create(opts: V86Handle9pOptions): Promise<V86Handle9p> {
    const device = await Virtio9pDevice.create({ backend: opts.backend, guestMemorySize: opts.bufferSize ?? 16 << 20, wasm: opts.wasm });
    return new V86Handle9p(device);
  }

  /** v86's hook: one 9P request (the whole T-message); `reply` takes the whole R-message. */
  readonly handle9p = (request: Uint8Array, reply: (bytes: Uint8Array) => void): void => {
    this.waiting.push([request, reply]);
    this.pump();
  };

  private pump(): void {
    while (this.waiting.length) {
      const [req, reply] = this.waiting[0];
      const ram = this.device.ram;
      // Tread/Treaddir replies may carry count bytes; others are small.
      const type = req[4];
      const count = req.length >= 23 ? (req[19] | (req[20] << 8) | (req[21] << 16) | (req[22] << 24)) >>> 0 : 0;
      const cap = (type === 116 || type === 40) ? Math.min(11 + count, 4 << 20) : 16384;
      const r = this.arena.alloc(req.length);
      const p = r < 0 ? -1 : this.arena.alloc(cap);
      if (p < 0) { if (r >= 0) this.arena.release(r); return; } // wait for a reply to free space
      ram.set(req, r);
      const done = (len: number) => {
        // v86 copies the reply into guest RAM before returning
        // this.device.ram, not `ram`: the request may have grown the memory (a fid table)
        if (len > 0) reply(this.device.ram.subarray(p, p + len));
        this.arena.release(r);
        this.arena.release(p);
        if (this.waiting.length) queueMicrotask(() => this.pump());
      };
      const rc = this.device.submit(this.session, r, req.length, p, cap, done);
      if (rc === EAGAIN) { this.arena.release(r); this.arena.release(p); return; }
      this.waiting.shift();
      if (rc !== 0) { this.arena.release(r); this.arena.release(p); }
    }
  }

  /** Clunk everything (the guest's 9P session ends). */
  close(): void { this.device.closeSession(this.session); }
}
