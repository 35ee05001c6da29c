/**
 * Source-mapped frames: a CPU profile of the built CLI names `dist/…/*.js` positions; this
 * rewrites every call frame (and every per-line tick) through the script's source map
 * (`tsc`'s `.js.map`, read with node:module's SourceMap) to the `.ts` source, line and column,
 * so flamegraphs and speedscope show the code as written. Scripts without a map keep their frames.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { isAbsolute, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuProfile, PositionTick } from './cpuprofile.js';

/** Frames of a profile, and how many of them now point at their source. */
export interface MappedCounts {
  /** Frames with a script position (native frames such as `(program)` have none). */
  frames: number;
  /** Of those, frames rewritten to an original source. */
  mapped: number;
}

/** A column past the end of any line: finds the last mapping of a line. */
const LINE_END = 2 ** 30;

/** What node:module's `findEntry` gives back when it finds something. */
interface Entry {
  generatedLine: number;
  originalSource: string;
  originalLine: number;
  originalColumn: number;
}

/** A script's source map, with the URL its sources are relative to and their number. */
interface LoadedMap {
  map: SourceMap;
  base: string;
  /** The only source, for a map of one (tsc's); undefined otherwise. */
  only: string | undefined;
}

/** The map a generated script's `sourceMappingURL` comment names, or its `.map` sibling. */
function loadMap(scriptUrl: string): LoadedMap | undefined {
  if (!scriptUrl.startsWith('file:')) return undefined;
  const path = fileURLToPath(scriptUrl);
  let mapUrl = `${scriptUrl}.map`;
  try {
    const tail = readFileSync(path, 'utf8').slice(-512);
    const m = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(tail);
    if (m !== null) mapUrl = new URL(m[1]!, scriptUrl).href;
  } catch {
    return undefined;
  }
  let payload: SourceMapPayload;
  if (mapUrl.startsWith('data:')) {
    const comma = mapUrl.indexOf(',');
    const body = mapUrl.slice(comma + 1);
    const text = mapUrl.slice(0, comma).endsWith(';base64')
      ? Buffer.from(body, 'base64').toString('utf8')
      : decodeURIComponent(body);
    payload = JSON.parse(text) as SourceMapPayload;
  } else {
    const mapPath = fileURLToPath(mapUrl);
    if (!existsSync(mapPath)) return undefined;
    payload = JSON.parse(readFileSync(mapPath, 'utf8')) as SourceMapPayload;
  }
  const sourceRoot = (payload.sourceRoot as string | undefined) ?? '';
  const root = sourceRoot === '' ? mapUrl : new URL(sourceRoot.replace(/\/?$/, '/'), mapUrl).href;
  return {
    map: new SourceMap(payload),
    base: root,
    only: payload.sources.length === 1 ? payload.sources[0] : undefined,
  };
}

function isEntry(e: object): e is Entry {
  return 'originalSource' in e && typeof (e as Entry).originalSource === 'string';
}

/**
 * Rewrites CPU profiles' frames through source maps, loading each script's map once. A frame
 * keeps its generated position when the map names a source that is not there (a package that
 * ships maps without its sources): a real position beats a dangling one.
 */
export class ProfileSourceMapper {
  readonly #maps = new Map<string, LoadedMap | undefined>();
  readonly #sources = new Map<string, boolean>();

  /** The source position of 0-based `line`, `column` of `scriptUrl`, or undefined without a mapping there. */
  lookup(scriptUrl: string, line: number, column: number): { url: string; line: number; column: number } | undefined {
    const m = this.#map(scriptUrl);
    if (m === undefined) return undefined;
    let e: object = m.map.findEntry(line, column);
    // A module's top-level code starts at 0:0, which has no mapping when a `#!` line comes first.
    if (!isEntry(e) && line === 0 && column === 0 && m.only !== undefined)
      e = { generatedLine: 0, originalSource: m.only, originalLine: 0, originalColumn: 0 } satisfies Entry;
    if (!isEntry(e)) return undefined;
    const url = new URL(e.originalSource, m.base).href;
    let present = this.#sources.get(url);
    if (present === undefined) {
      present = url.startsWith('file:') && existsSync(fileURLToPath(url));
      this.#sources.set(url, present);
    }
    return present ? { url, line: e.originalLine, column: e.originalColumn } : undefined;
  }

  /** Rewrites every frame of `p` in place; returns the counts. */
  rewrite(p: CpuProfile): MappedCounts {
    const counts: MappedCounts = { frames: 0, mapped: 0 };
    for (const node of p.nodes) {
      const f = node.callFrame;
      if (f.url === '' || f.lineNumber < 0) continue;
      counts.frames++;
      const at = this.lookup(f.url, f.lineNumber, Math.max(0, f.columnNumber));
      if (at === undefined) continue;
      if (node.positionTicks !== undefined) node.positionTicks = this.#ticks(f.url, node.positionTicks);
      f.url = at.url;
      f.lineNumber = at.line;
      f.columnNumber = at.column;
      counts.mapped++;
    }
    return counts;
  }

  /** Per-line ticks (1-based generated lines) on their source lines; a line without a mapping is dropped. */
  #ticks(scriptUrl: string, ticks: readonly PositionTick[]): PositionTick[] {
    const map = this.#map(scriptUrl)!.map;
    const byLine = new Map<number, number>();
    for (const t of ticks) {
      const e = map.findEntry(t.line - 1, LINE_END);
      if (!isEntry(e) || e.generatedLine !== t.line - 1) continue;
      byLine.set(e.originalLine + 1, (byLine.get(e.originalLine + 1) ?? 0) + t.ticks);
    }
    return [...byLine].map(([line, n]) => ({ line, ticks: n }));
  }

  #map(scriptUrl: string): LoadedMap | undefined {
    if (!this.#maps.has(scriptUrl)) this.#maps.set(scriptUrl, loadMap(scriptUrl));
    return this.#maps.get(scriptUrl);
  }
}

/**
 * How a frame's script reads in reports: a file URL as its path relative to `root` when inside
 * it (`src/bench/runner.ts`), else as its absolute path; other URLs (`node:internal/…`) as they are.
 */
export function displayPath(url: string, root: string): string {
  if (!url.startsWith('file:')) return url;
  const path = fileURLToPath(url);
  const rel = relative(root, path);
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? path : rel.split(sep).join('/');
}
