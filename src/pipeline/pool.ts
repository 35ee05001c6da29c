import { Piscina } from 'piscina';

/** Piscina options, as its constructor takes them. */
export type PoolOptions = NonNullable<ConstructorParameters<typeof Piscina>[0]>;

/**
 * Where a worker entry lives: `dist/workers/<name>.js` when running from the build, or the `.ts`
 * source with the tsx loader under vitest or tsx (reference/toolchain.md §2). From the build,
 * execArgv is left to inherit, so `--cpu-prof` reaches the workers.
 */
export function workerSpec(name: string): PoolOptions {
  const fromSource = import.meta.url.endsWith('.ts');
  const filename = new URL(`../../workers/${name}.${fromSource ? 'ts' : 'js'}`, import.meta.url).href;
  return fromSource ? { filename, execArgv: [...process.execArgv, '--import', 'tsx'] } : { filename };
}

/** Creates a pool for worker `name`. A worker that fails to start rejects its task, never crashes the process. */
export function makePool<T, R>(name: string, opts: PoolOptions = {}): Piscina<T, R> {
  const pool = new Piscina<T, R>({ ...workerSpec(name), ...opts });
  // Without a listener, a worker that fails at boot is an uncaught exception (toolchain.md §8.7);
  // the failure still reaches the caller as the task's rejection.
  pool.on('error', () => {});
  return pool;
}
