// Jest runs the TypeScript sources as ESM, transformed by esbuild (harness/jest-esbuild.cjs).
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '\\.ts$': '<rootDir>/harness/jest-esbuild.cjs' },
  testTimeout: 60000,
  // Two suites at a time: on a 2-core machine jest's default (cores - 1) runs everything in one
  // process, while most long suites wait on a guest or a child process. Tests check behaviour,
  // never time, so they hold on a loaded machine.
  maxWorkers: 2,
};
