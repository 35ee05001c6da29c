/**
 * The VT-d page request descriptor (VT-d spec §7.5.1; reference/viommu-queues.md §2.4; Linux
 * `struct page_req_dsc`, QEMU `VTD_PRD_*`) and the PCIe page group response codes that answer it
 * (descriptor 0x9, descriptors.ts). A descriptor is 32 bytes, 8 little-endian 32-bit words in
 * guest memory: qword q is word 2q (bits 31:0) then word 2q + 1 (bits 63:32).
 *
 *   qw0: type [7:0] = 1, PASID present b8, RID [31:16], PASID [51:32], execute b52, privileged b53
 *   qw1: read b0, write b1, LPIG b2 (last page in group), PRGI [11:3], page address [63:12]
 *   qw2, qw3: private data (not modelled: written 0)
 */

/** Words of one page request descriptor. */
export const PRD_WORDS = 8;

/** The descriptor type in qw0 bits 7:0. */
export const PRD_TYPE = 1;

/** Bit positions, per 32-bit word. */
export const PRD = {
  /** w0 bits 7:0: type. */
  TypeMask: 0xff,
  /** w0 bit 8: a PASID prefix came with the request. */
  PasidPresent: 1 << 8,
  /** w0 bits 31:16: requester id (bus << 8 | devfn). */
  RidShift: 16,
  /** w1 bits 19:0 (qw0 51:32): PASID. */
  PasidMask: 0xfffff,
  /** w1 bit 20 (qw0 b52): execute requested. */
  Exec: 1 << 20,
  /** w1 bit 21 (qw0 b53): privileged-mode access requested. */
  Priv: 1 << 21,
  /** w2 bit 0 (qw1 b0): read access requested. */
  Read: 1 << 0,
  /** w2 bit 1: write access requested. */
  Write: 1 << 1,
  /** w2 bit 2: last page in group. */
  Lpig: 1 << 2,
  /** w2 bits 11:3: page request group index. */
  PrgiShift: 3,
  PrgiMask: 0x1ff,
  /** w2 bits 31:12 / w3: page address bits 31:12 / 63:32. */
  AddrLoMask: 0xfffff000,
} as const;

/** PRG indexes per requester (9 bits). */
export const PRGI_COUNT = 512;

/**
 * Response codes of a page group response (PCIe PRG response; Linux `QI_RESP_*`). QEMU reads
 * 0 as success, 1 as invalid and anything else as failure (reference §2.4), and so does the unit.
 */
export const PRG_RESPONSE = {
  Success: 0x0,
  InvalidRequest: 0x1,
  Failure: 0xf,
} as const;

/** One decoded page request. */
export class PageRequestDescriptor {
  /** Requester id. */
  rid = 0;
  /** The PASID, or -1 when the request had none. */
  pasid = -1;
  /** Page address (4 KiB aligned). */
  address = 0;
  /** Page request group index. */
  prgi = 0;
  /** Last page in group. */
  lpig = false;
  read = false;
  write = false;
  exec = false;
  priv = false;
  /** qw0 bits 7:0 as read. */
  type = PRD_TYPE;
}

/** Writes `d` as 8 words at word `at` of `mem` (private data 0). */
export function encodePageRequest(d: PageRequestDescriptor, mem: Int32Array, at: number): void {
  const pp = d.pasid >= 0;
  mem[at] = PRD_TYPE | (pp ? PRD.PasidPresent : 0) | ((d.rid & 0xffff) << PRD.RidShift) | 0;
  mem[at + 1] = (pp ? d.pasid & PRD.PasidMask : 0) | (d.exec ? PRD.Exec : 0) | (d.priv ? PRD.Priv : 0) | 0;
  mem[at + 2] =
    (d.read ? PRD.Read : 0) |
    (d.write ? PRD.Write : 0) |
    (d.lpig ? PRD.Lpig : 0) |
    ((d.prgi & PRD.PrgiMask) << PRD.PrgiShift) |
    ((d.address % 2 ** 32) & PRD.AddrLoMask) |
    0;
  mem[at + 3] = Math.floor(d.address / 2 ** 32) | 0;
  mem.fill(0, at + 4, at + PRD_WORDS);
}

/** Reads the descriptor at word `at` of `mem` into `out` (returned). */
export function decodePageRequest(
  mem: Int32Array,
  at: number,
  out: PageRequestDescriptor = new PageRequestDescriptor(),
): PageRequestDescriptor {
  const w0 = mem[at]!;
  const w1 = mem[at + 1]!;
  const w2 = mem[at + 2]!;
  out.type = w0 & PRD.TypeMask;
  out.rid = w0 >>> PRD.RidShift;
  out.pasid = (w0 & PRD.PasidPresent) !== 0 ? w1 & PRD.PasidMask : -1;
  out.exec = (w1 & PRD.Exec) !== 0;
  out.priv = (w1 & PRD.Priv) !== 0;
  out.read = (w2 & PRD.Read) !== 0;
  out.write = (w2 & PRD.Write) !== 0;
  out.lpig = (w2 & PRD.Lpig) !== 0;
  out.prgi = (w2 >>> PRD.PrgiShift) & PRD.PrgiMask;
  out.address = (mem[at + 3]! >>> 0) * 2 ** 32 + ((w2 & PRD.AddrLoMask) >>> 0);
  return out;
}
