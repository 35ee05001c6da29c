/**
 * A table of ASCII names looked up by the bytes of a line, without building a string: the
 * trace parser's way to recognise event names, descriptor types and opcode names in the hot loop.
 */

/** FNV-1a over bytes [start, end) of `buf`, 32 bits. */
function hashBytes(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

/** Names with an id each; `lookup` finds the id of a byte range (-1 when it is no name of the table). */
export class ByteNameTable {
  /** The names, by id. */
  readonly names: readonly string[];
  readonly #bytes: Uint8Array[];
  /** Hash → first id with that hash; `#next` chains ids that share a hash. */
  readonly #first = new Map<number, number>();
  readonly #next: Int32Array;

  /** A table of `names` (ASCII); the id of `names[i]` is `i`. */
  constructor(names: readonly string[]) {
    this.names = names;
    this.#bytes = names.map((n) => Uint8Array.from(n, (c) => c.charCodeAt(0)));
    this.#next = new Int32Array(names.length).fill(-1);
    for (let id = names.length - 1; id >= 0; id--) {
      const b = this.#bytes[id]!;
      const h = hashBytes(b, 0, b.length);
      const head = this.#first.get(h);
      if (head !== undefined) this.#next[id] = head;
      this.#first.set(h, id);
    }
  }

  /** The id of the name spelled by bytes [start, end) of `buf`, or -1. Allocation-free. */
  lookup(buf: Uint8Array, start: number, end: number): number {
    let id = this.#first.get(hashBytes(buf, start, end)) ?? -1;
    while (id >= 0) {
      if (sameBytes(this.#bytes[id]!, buf, start, end)) return id;
      id = this.#next[id]!;
    }
    return -1;
  }
}

function sameBytes(name: Uint8Array, buf: Uint8Array, start: number, end: number): boolean {
  if (name.length !== end - start) return false;
  for (let i = 0; i < name.length; i++) if (name[i] !== buf[start + i]) return false;
  return true;
}

/** Bytes [start, end) of `buf` as a string (for the rare line that gets a name of its own in the counts). */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  let s = '';
  for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!);
  return s;
}
