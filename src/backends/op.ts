/**
 * Backend operations written once as generators over another backend's results, driven
 * synchronously while that backend answers synchronously (the local and memory backends) and
 * asynchronously from the first Promise on (the proxy). A wrapper yields each inner call's
 * result (`const st = yield inner.getattr(n)`) and returns its own; `run` gives back a value or
 * a Promise, as the Backend interface allows.
 */
import type { Res } from './backend.js';

export type Op<T> = Generator<unknown, T, unknown>;

/** A negative errno (what a yielded inner call may answer instead of its value). */
export const isErr = (v: unknown): v is number => typeof v === 'number' && v < 0;

export function run<T>(g: Op<T>): Res<T> {
  let r = g.next();
  while (!r.done) {
    const v = r.value;
    if (v instanceof Promise) return resume(g, v);
    r = g.next(v);
  }
  return r.value as Res<T>;
}

async function resume<T>(g: Op<T>, first: Promise<unknown>): Promise<T> {
  let p: unknown = first;
  for (;;) {
    let r: IteratorResult<unknown, T>;
    try { r = g.next(await p); } catch (e) { r = g.throw(e); }
    if (r.done) return r.value;
    p = r.value;
  }
}
