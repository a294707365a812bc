/**
 * The tracker's public surface. (Deliveries only on this branch; the integrator merges it with
 * the ingest's and the pipeline's exports.)
 */
export * from './deliveries/index.ts';
