import type { Plugin, BuildOptions } from 'esbuild';
export declare const browserHost: Plugin;
export declare const browserOptions: Pick<BuildOptions, 'platform' | 'plugins' | 'loader'>;
