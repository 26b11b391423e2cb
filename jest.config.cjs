// Jest runs the TypeScript sources as ESM, transformed by esbuild (harness/jest-esbuild.cjs).
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '\\.ts$': '<rootDir>/harness/jest-esbuild.cjs' },
  testTimeout: 60000,
};
