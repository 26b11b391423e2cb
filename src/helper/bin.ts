/** Stand-alone entry of the helper (bundled by tests; the CLI's `virtio9p helper` is the same). */
import { runHelper } from './main.js';

process.exitCode = await runHelper(process.argv.slice(2));
