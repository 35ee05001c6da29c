/** Plain-text tables for the human output: columns padded to their widest cell, numbers right-aligned. */

/** A column: its header and whether its cells are right-aligned. */
export interface Column {
  header: string;
  right?: boolean;
}

/** The table's lines: a header, a rule, one line per row (each row has a cell per column). */
export function textTable(columns: readonly Column[], rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    indent +
    cells
      .map((cell, i) => (columns[i]!.right === true ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), indent + widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)];
}
