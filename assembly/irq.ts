// Interrupts: every interrupt the device raises goes through here, so the transports' ISR
// (PCI) / InterruptStatus (MMIO) bits follow them: bit 0 used buffers, bit 1 configuration.
import { hostInterrupt } from "./host";

export let isr: u32 = 0;

export function raise(kind: i32): void {
  isr |= kind == 0 ? 1 : 2;
  hostInterrupt(kind);
}

export function ackIsr(bits: u32): void { isr &= ~bits; }
export function takeIsr(): u32 { let v = isr; isr = 0; return v; }
export function clearIsr(): void { isr = 0; }

export function saveIrq(p: usize): usize { store<u32>(p, isr); return p + 8; }
export function loadIrq(p: usize): usize { isr = load<u32>(p); return p + 8; }
