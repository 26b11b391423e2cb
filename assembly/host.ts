// Every import of the module, in one place. Besides `env.memory` and the wasi_snapshot_preview1
// runtime imports that @assemblyscript/wasi-shim adds (fd_write, proc_exit for abort/trace),
// the module imports:
//
//   device.interrupt(kind)        kind 0: used buffers on queue 0; 1: configuration change
//   device.reply(token, len)      a stream request's reply is ready (see stream.ts)
//   device.copyIn(gpa, len)       copy mode only (guest.ts): guest RAM → the window
//   device.copyOut(gpa, len)      copy mode only: the window → guest RAM
//   backend.*                     the file-system operations (the seed's FileOperations table,
//                                 WASI conventions): result 0 = done, > 0 = Linux errno,
//                                 PENDING = the host will call `complete(slot, result)` later.
//                                 Out-parameters are written through pointers into the slot's
//                                 out area; names are (ptr, len) bytes; offsets are f64 that
//                                 the core keeps below 2^53.
//
// The layouts of the out-parameters are in README.md ("ABI") and src/wasm/abi.ts.

export const PENDING: i32 = -1;

// @ts-ignore: decorator
@external("device", "interrupt")
export declare function hostInterrupt(kind: i32): void;
/** A stream request (submitted with `submit`) is answered: `len` bytes at its reply buffer,
 *  0 = no reply (it was flushed). */
// @ts-ignore: decorator
@external("device", "reply")
export declare function hostReply(token: u32, len: u32): void;
/** Copy mode (guest.ts): copy guest RAM [gpa, gpa+len) into the window / out of it. */
// @ts-ignore: decorator
@external("device", "copyIn")
export declare function hostCopyIn(gpa: u32, len: u32): void;
// @ts-ignore: decorator
@external("device", "copyOut")
export declare function hostCopyOut(gpa: u32, len: u32): void;
/** The core grew the memory (a fid table doubled): a non-shared memory's old ArrayBuffer is
 *  detached, so the host re-takes its views now, before anything reads them. */
// @ts-ignore: decorator
@external("device", "grew")
export declare function hostGrew(): void;

// @ts-ignore: decorator
@external("backend", "attach")
export declare function bAttach(slot: i32, aname: usize, anameLen: i32, uid: u32, outStat: usize): i32;
// @ts-ignore: decorator
@external("backend", "lookup")
export declare function bLookup(slot: i32, dir: u32, name: usize, nameLen: i32, outStat: usize): i32;
/** Another reference to `node` and its attributes (a walk of zero names clones a fid). */
// @ts-ignore: decorator
@external("backend", "dup")
export declare function bDup(slot: i32, node: u32, outStat: usize): i32;
// @ts-ignore: decorator
@external("backend", "getattr")
export declare function bGetattr(slot: i32, node: u32, outStat: usize): i32;
// @ts-ignore: decorator
@external("backend", "setattr")
export declare function bSetattr(slot: i32, node: u32, attr: usize): i32;
// @ts-ignore: decorator
@external("backend", "open")
export declare function bOpen(slot: i32, node: u32, flags: u32, outFh: usize): i32;
// @ts-ignore: decorator
@external("backend", "create")
export declare function bCreate(slot: i32, dir: u32, name: usize, nameLen: i32, flags: u32, mode: u32, uid: u32, gid: u32, outStat: usize): i32;
// @ts-ignore: decorator
@external("backend", "read")
export declare function bRead(slot: i32, fh: u32, offset: f64, iov: usize, iovCnt: i32, outCount: usize): i32;
// @ts-ignore: decorator
@external("backend", "write")
export declare function bWrite(slot: i32, fh: u32, offset: f64, iov: usize, iovCnt: i32, outCount: usize): i32;
// @ts-ignore: decorator
@external("backend", "readdir")
export declare function bReaddir(slot: i32, fh: u32, cookie: f64, nameBuf: usize): i32;
// @ts-ignore: decorator
@external("backend", "readlink")
export declare function bReadlink(slot: i32, node: u32, buf: usize, cap: i32, outLen: usize): i32;
// @ts-ignore: decorator
@external("backend", "mkdir")
export declare function bMkdir(slot: i32, dir: u32, name: usize, nameLen: i32, mode: u32, uid: u32, gid: u32, outStat: usize): i32;
// @ts-ignore: decorator
@external("backend", "symlink")
export declare function bSymlink(slot: i32, dir: u32, name: usize, nameLen: i32, target: usize, targetLen: i32, uid: u32, gid: u32, outStat: usize): i32;
// @ts-ignore: decorator
@external("backend", "mknod")
export declare function bMknod(slot: i32, dir: u32, name: usize, nameLen: i32, mode: u32, major: u32, minor: u32, uid: u32, gid: u32, outStat: usize): i32;
// @ts-ignore: decorator
@external("backend", "link")
export declare function bLink(slot: i32, dir: u32, name: usize, nameLen: i32, target: u32): i32;
// @ts-ignore: decorator
@external("backend", "renameat")
export declare function bRenameat(slot: i32, olddir: u32, oldName: usize, oldLen: i32, newdir: u32, newName: usize, newLen: i32): i32;
// @ts-ignore: decorator
@external("backend", "rename")
export declare function bRename(slot: i32, node: u32, newdir: u32, name: usize, nameLen: i32): i32;
// @ts-ignore: decorator
@external("backend", "unlinkat")
export declare function bUnlinkat(slot: i32, dir: u32, name: usize, nameLen: i32, flags: u32): i32;
// @ts-ignore: decorator
@external("backend", "remove")
export declare function bRemove(slot: i32, node: u32): i32;
// @ts-ignore: decorator
@external("backend", "fsync")
export declare function bFsync(slot: i32, fh: u32, datasync: u32): i32;
// @ts-ignore: decorator
@external("backend", "statfs")
export declare function bStatfs(slot: i32, node: u32, outStatfs: usize): i32;
// @ts-ignore: decorator
@external("backend", "xattrwalk")
export declare function bXattrwalk(slot: i32, node: u32, name: usize, nameLen: i32, outFh: usize): i32;
// @ts-ignore: decorator
@external("backend", "xattrcreate")
export declare function bXattrcreate(slot: i32, node: u32, name: usize, nameLen: i32, size: f64, flags: u32, outFh: usize): i32;
// @ts-ignore: decorator
@external("backend", "lock")
export declare function bLock(slot: i32, fh: u32, ino: f64, type: u32, flags: u32, start: f64, length: f64, procId: u32, clientId: usize, clientIdLen: i32, out: usize): i32;
// @ts-ignore: decorator
@external("backend", "getlock")
export declare function bGetlock(slot: i32, fh: u32, ino: f64, type: u32, start: f64, length: f64, procId: u32, clientId: usize, clientIdLen: i32, out: usize): i32;
// @ts-ignore: decorator
@external("backend", "close")
export declare function bClose(slot: i32, fh: u32): i32;
// @ts-ignore: decorator
@external("backend", "forget")
export declare function bForget(node: u32): void;
// @ts-ignore: decorator
@external("backend", "cancel")
export declare function bCancel(slot: i32): void;
