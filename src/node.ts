/**
 * virtio9p-wasm/node — what needs Node: backends over the host file system (LocalBackend, and
 * ProxyBackend with a helper process that opens files and passes descriptors back), the
 * socket server behind `virtio9p serve`, and the proxy helper behind `virtio9p helper`.
 *
 *   import { LocalBackend, P9Server, parseListen } from 'virtio9p-wasm/node';
 *   const server = await P9Server.start({ backend: new LocalBackend({ root: dir }), listen: parseListen('tcp::5640') });
 */
export { LocalBackend, type LocalBackendOptions } from './backends/local.js';
export { ProxyBackend, type ProxyBackendOptions } from './backends/proxy/backend.js';
export { DEFAULT_HELPER, type ProxyTarget, type LaunchSpec } from './backends/proxy/client.js';
export { ReadonlyBackend } from './backends/readonly.js';
export { memoryFromDirectory } from './backends/seed.js';
export { makeBackend, ownHelper, BACKENDS, type BackendKind, type MakeOptions } from './backends/make.js';
export { P9Server, type ServeOptions } from './serve.js';
export { parseListen, prepareListen, type ListenSpec } from './listen.js';
export { runHelper, HELPER_USAGE } from './helper/main.js';
export { HelperServer } from './helper/server.js';
export { AccessBackend, hostGroups, permits, NOBODY, type AccessOptions } from './backends/access.js';
export { HelperNotRunnable, checkHelper } from './backends/proxy/client.js';
export { NodeDirStore } from './backends/upper-dir-store.js';
export { buildImage } from './image.js';
