/**
 * postern's public door. Each folder keeps its own `index.ts`; this file
 * alone decides what the package exports.
 */
export * from '../ring/index.ts';
