/** The pipeline: worker pools (the shard pipeline arrives with issue 4). */
export { makePool, workerSpec, type PoolOptions } from './pool.js';
export { TranslatePool } from './translate-pool.js';
export { InvalidationPipeline, type Completion, type PipelineMetrics, type PipelineOptions } from './invalidation.js';
