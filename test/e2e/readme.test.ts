import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const examples = [...readme.matchAll(/<!-- example: (\w+) -->\s*```ts\n([\s\S]*?)```/g)].map((m) => ({
  name: m[1]!,
  code: m[2]!,
}));

describe('README examples run as written', () => {
  it('the README has its examples', () => {
    expect(examples.map((e) => e.name)).toEqual([
      'basic',
      'pasid',
      'workers',
      'vtd',
      'vtdassign',
      'shadow',
      'smmu',
      'faults',
      'engine',
    ]);
  });

  it.each(examples)('example $name runs and exits 0', ({ code }) => {
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-readme-'));
    try {
      const file = join(dir, 'example.mts');
      writeFileSync(file, code.replaceAll("from 'ioasid'", `from ${JSON.stringify(join(root, 'src/index.ts'))}`));
      const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout.length).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
