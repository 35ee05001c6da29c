/*
 * Plain-text tables for the human output of `ioasid inspect`: columns padded to their widest
 * cell, numbers right-aligned, a rule under the header; and the number spellings the tables use.
 */

/** A column: its header and whether its cells are right-aligned. */
export interface Column {
  header: string;
  right?: boolean;
}

/** Renders `rows` under `columns`, indented by `indent` spaces. */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[], indent = 2): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const pad = ' '.repeat(indent);
  const line = (cells: readonly string[]): string =>
    pad +
    cells
      .map((cell, i) => (columns[i]!.right === true ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [
    line(columns.map((c) => c.header)),
    pad + widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
  ].join('\n');
}

/** Renders key/value pairs as two aligned columns, indented by `indent` spaces. */
export function renderPairs(pairs: readonly (readonly [string, string])[], indent = 4): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${' '.repeat(indent)}${k.padEnd(width)}  ${v}`).join('\n');
}

/** `0x` and at least `digits` hex digits of `n` (a non-negative integer below 2^53). */
export function hexPad(n: number, digits = 1): string {
  return `0x${n.toString(16).padStart(digits, '0')}`;
}

/** A byte count in the largest binary unit that divides it ('4 KiB', '2 MiB', '1536 B'). */
export function bytes(n: number): string {
  for (const [unit, size] of [
    ['TiB', 2 ** 40],
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  }
  return `${n} B`;
}
