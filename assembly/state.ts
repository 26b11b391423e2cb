// Snapshot and restore of the device (for VMMs that save state). The core's state is its
// linear memory below CORE_END (static data, counters, queues, sessions with their first fid
// tables, slots) plus the module-level globals, plus the fid tables that grew into the fid heap
// (past guest RAM: the host saves them apart, see fidTablePtr in index.ts), which the host cannot read: `saveState` writes them
// into STATE (static data, so it travels with the memory image) and `loadState` reads them
// back after the host has put a memory image in place. Every module-level `let` of the core is
// listed here or marked transient where it is declared (tests/static checks this).
import { saveGuest, loadGuest } from "./guest";
import { saveDevice, loadDevice } from "./device";
import { saveTransport, loadTransport } from "./transport";
import { saveSlots, loadSlots } from "./slots";
import { saveIrq, loadIrq } from "./irq";
import { saveFids, loadFids } from "./p9/fids";

export const STATE_SIZE: i32 = 256;
const STATE = memory.data(STATE_SIZE);
const STATE_MAGIC: u32 = 0x53503956; // "V9PS"

/** Write the globals into the state block; returns its address (part of the memory image). */
export function saveState(): usize {
  let p = STATE;
  store<u32>(p, STATE_MAGIC);
  p += 8;
  p = saveGuest(p);
  p = saveDevice(p);
  p = saveTransport(p);
  p = saveSlots(p);
  p = saveIrq(p);
  p = saveFids(p);
  return STATE;
}

/** After the host restored the memory image: read the globals back. False if the block is
 *  not a saved state. */
export function loadState(): bool {
  let p = STATE;
  if (load<u32>(p) != STATE_MAGIC) return false;
  p += 8;
  p = loadGuest(p);
  p = loadDevice(p);
  p = loadTransport(p);
  p = loadSlots(p);
  p = loadIrq(p);
  p = loadFids(p);
  return true;
}
