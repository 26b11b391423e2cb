// The fast tier (`npm run test:unit`): no peers (diod, QEMU and its helper, Chromium, guest
// kernels), no root, no packing. The full tier (`npm test`, jest.config.cjs) runs everything.
const base = require('./jest.config.cjs');

/** Suites that need a peer, root, or minutes of wall time. */
const FULL_ONLY = [
  'tests/e2e/',                        // Linux guests under QEMU and in v86
  'tests/attack/',                     // root (ownership, device nodes, setpriv)
  'tests/browser/',                    // Chromium
  'tests/package/',                    // npm pack + install; diod clients; Chromium
  'tests/soak/',                       // long runs, QEMU's helper
  'tests/clients/diod.test.ts',        // diod's clients
  'tests/backends/proxy.test.ts',      // QEMU's virtfs-proxy-helper
  'tests/conformance/proxy.test.ts',   // QEMU's virtfs-proxy-helper
  'tests/escape/',                     // QEMU's helper; root for some races
  'tests/faults/',                     // a tmpfs mount (root); QEMU's helper
  'tests/helper/',                     // root (ownership), QEMU as the helper's client
  'tests/bench/browser.test.ts',       // Chromium
  'tests/conformance/transports.test.ts', // the whole suite again over MMIO, PCI and v86's bus (minutes)
  'tests/property/differential.test.ts',  // 400 random sequences against two backends (minutes)
];

module.exports = { ...base, testPathIgnorePatterns: ['/node_modules/', ...FULL_ONLY.map((p) => `<rootDir>/${p}`)] };
