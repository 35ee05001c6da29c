/**
 * The machine a report was measured on: every report names it (issue 7: node version, CPU model,
 * cores, and the ioasid version and commit), as fio and hyperfine do.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, platform, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What a report says about the machine and the build that produced it. */
export interface MachineInfo {
  /** `process.version`, such as 'v20.20.2'. */
  node: string;
  /** The first CPU's model name, or 'unknown'. */
  cpuModel: string;
  /** Logical CPUs. */
  cores: number;
  /** OS, kernel release and architecture: 'linux 6.1.0 x64'. */
  platform: string;
  /** The `version` of ioasid's package.json, or 'unknown'. */
  ioasidVersion: string;
  /** `git rev-parse --short HEAD` of the ioasid checkout, or 'unknown' outside one. */
  commit: string;
}

/** Where `machineInfo` looks for package.json and the git checkout. */
export interface MachineInfoOptions {
  /** The ioasid package root; default: found by walking up from this module. */
  root?: string;
}

/** Describes this machine and this ioasid build. Never throws: what it cannot learn is 'unknown'. */
export function machineInfo(options: MachineInfoOptions = {}): MachineInfo {
  const root = options.root ?? packageRoot();
  const cpuList = cpus();
  return {
    node: process.version,
    cpuModel: cpuList[0]?.model.trim() || 'unknown',
    cores: cpuList.length > 0 ? cpuList.length : availableParallelism(),
    platform: `${platform()} ${release()} ${arch()}`,
    ioasidVersion: root === undefined ? 'unknown' : packageVersion(root),
    commit: root === undefined ? 'unknown' : gitCommit(root),
  };
}

/** The nearest directory above this module with ioasid's package.json (from src/ or dist/src/). */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file) && readPackageJson(file)?.name === 'ioasid') return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function packageVersion(root: string): string {
  const version = readPackageJson(join(root, 'package.json'))?.version;
  return typeof version === 'string' ? version : 'unknown';
}

function readPackageJson(file: string): { name?: unknown; version?: unknown } | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function gitCommit(root: string): string {
  // Only the package's own checkout: installed under another project's node_modules, git would
  // otherwise answer with that project's commit.
  if (!existsSync(join(root, '.git'))) return 'unknown';
  try {
    const out = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    });
    return out.trim() || 'unknown';
  } catch {
    return 'unknown';
  }
}
