import type { FrameAllocator } from '../memory/frame-alloc.js';
import type { PhysMemory } from '../memory/phys.js';

/** Domain formats a descriptor can name. */
export const DomainFormat = {
  None: 0,
  Mock: 1,
  ArmS1: 2,
  ArmS2: 3,
  VtdSecondStage: 4,
  X86FirstStage: 5,
  /**
   * A VT-d nested domain: a guest's first-stage table (its root is a guest-physical address)
   * walked through its nest parent's second stage. The descriptor's fourth word names the parent.
   */
  VtdNested: 6,
  /**
   * An SMMUv3 nested domain (a vSTE HWPT): the root is the vSTE's S1ContextPtr, a guest-physical
   * address of the CD table (all 52 bits: see {@link ContextTables.domainRootFull}); the walk
   * configuration word is the vSTE's packed fields (translate/arm-nested.ts); the fourth word
   * names the parent, whose stage 2 every CD-table read, stage-1 table read and output goes through.
   */
  ArmNested: 7,
} as const;

/** How many domain descriptors and device contexts the shared tables hold. */
export const MAX_DOMAINS = 4096;
/** How many bound devices the shared tables hold. */
export const MAX_DEVICES = 4096;

const DOMAIN_WORDS = 6; // [format, rootPa bits 31:0, packed walk configuration, parent descriptor (nested), rootPa bits 52:32, flags]
const DEVICE_WORDS = 4; // [ridDomain, pasidDirFrame + 1, pasidBits, flags (bit 0: ATS)]
/** Descriptor flag: a nested domain in software mode, translated through the shadow (cache/shadow.ts). */
export const DOMAIN_SHADOW = 1;
/**
 * Descriptor flag: the domain's HWPT has a FAULT object (IOPF-capable): a translation fault that
 * a page request can resolve is reported as TranslateFault.Pending.
 */
export const DOMAIN_IOPF = 2;
/** Device context flag: the device has an ATC (PCIe ATS). */
export const DEV_ATS = 1;
const PASID_DIR_BITS = 10; // PASID bits 19:10 index the directory, 9:0 the leaf
const PASID_LEAF_MASK = (1 << PASID_DIR_BITS) - 1;

/** The buffers that hold the data-plane tables (handed to workers). */
export interface ContextHandles {
  /** Domain descriptors. */
  domains: SharedArrayBuffer;
  /** Device contexts. */
  devices: SharedArrayBuffer;
}

/**
 * What the registry publishes for the data plane, in shared memory, so that translation never
 * calls the registry (DESIGN.md "The registry"):
 * - immutable domain descriptors, named by a 32-bit index (0 = none);
 * - a context per device slot: the RID's domain index, and a two-level PASID table in physical
 *   frames (1024 directory entries of 1024 PASIDs each, as VT-d's PASID directory) whose entries
 *   are domain indexes.
 * A device's domain is switched by one `Atomics.store` of an index, so a walker sees the old
 * domain or the new one, never a torn or blocked state. Replaced descriptors are retired through
 * the epoch reclaimer before their index is reused.
 */
export class ContextTables {
  /** Domain descriptors. */
  readonly domains: Int32Array;
  /** Device contexts. */
  readonly devices: Int32Array;
  readonly #i32: Int32Array;
  readonly #frames: FrameAllocator | undefined;
  readonly #freeDomains: number[] = [];
  readonly #freeDevices: number[] = [];

  /** Creates the tables, or attaches to existing ones (a worker passes `handles` and no allocator). */
  constructor(mem: PhysMemory, frames?: FrameAllocator, handles?: ContextHandles) {
    this.#i32 = mem.i32;
    this.#frames = frames;
    this.domains = new Int32Array(handles?.domains ?? new SharedArrayBuffer(MAX_DOMAINS * DOMAIN_WORDS * 4));
    this.devices = new Int32Array(handles?.devices ?? new SharedArrayBuffer(MAX_DEVICES * DEVICE_WORDS * 4));
    for (let i = MAX_DOMAINS - 1; i >= 1; i--) this.#freeDomains.push(i);
    for (let i = MAX_DEVICES - 1; i >= 1; i--) this.#freeDevices.push(i);
  }

  /** The buffers to hand to a worker. */
  handles(): ContextHandles {
    return { domains: this.domains.buffer as SharedArrayBuffer, devices: this.devices.buffer as SharedArrayBuffer };
  }

  // ---- domain descriptors (control plane) ---------------------------------------------------

  /**
   * Publishes a descriptor and returns its index, or -1 when the table is full. `parent` is the
   * nest parent's descriptor of a nested domain (0 otherwise). `rootPa` may have up to 52 bits.
   */
  publishDomain(format: number, rootPa: number, walkConfig = 0, parent = 0, flags = 0): number {
    const d = this.#freeDomains.pop();
    if (d === undefined) return -1;
    this.domains[d * DOMAIN_WORDS + 5] = flags;
    this.domains[d * DOMAIN_WORDS + 1] = rootPa | 0;
    this.domains[d * DOMAIN_WORDS + 2] = walkConfig;
    this.domains[d * DOMAIN_WORDS + 3] = parent;
    this.domains[d * DOMAIN_WORDS + 4] = Math.floor(rootPa / 4294967296);
    Atomics.store(this.domains, d * DOMAIN_WORDS, format);
    return d;
  }

  /** Makes a descriptor index reusable. Call only after the reclaimer's grace period. */
  recycleDomain(index: number): void {
    Atomics.store(this.domains, index * DOMAIN_WORDS, DomainFormat.None);
    this.#freeDomains.push(index);
  }

  // ---- device contexts (control plane) ------------------------------------------------------

  /** Claims a device slot, or -1 when the table is full. */
  allocDevice(pasidBits: number, flags = 0): number {
    const s = this.#freeDevices.pop();
    if (s === undefined) return -1;
    const at = s * DEVICE_WORDS;
    Atomics.store(this.devices, at, 0);
    Atomics.store(this.devices, at + 1, 0);
    Atomics.store(this.devices, at + 2, pasidBits);
    Atomics.store(this.devices, at + 3, flags);
    return s;
  }

  /** Frees a device slot; it must have nothing attached. Its PASID tables go through `put`. */
  freeDevice(slot: number): void {
    const at = slot * DEVICE_WORDS;
    const dir = Atomics.load(this.devices, at + 1) - 1;
    if (dir >= 0) {
      Atomics.store(this.devices, at + 1, 0);
      const base = dir * 1024;
      for (let i = 0; i < 1024; i++) {
        const leaf = this.#i32[base + i]! - 1;
        if (leaf >= 0) this.#frames!.put(leaf);
      }
      this.#frames!.put(dir);
    }
    this.#freeDevices.push(slot);
  }

  /** Switches the RID's domain (0 detaches) in one store. */
  setRidDomain(slot: number, domain: number): void {
    Atomics.store(this.devices, slot * DEVICE_WORDS, domain);
  }

  /**
   * Makes sure the PASID table can hold `pasid` (allocating directory and leaf frames; ENOMEM).
   * Call before {@link setPasidDomain} so that the switch itself cannot fail. Returns an undo that
   * frees what this call allocated, for a caller whose later step fails.
   */
  preparePasid(slot: number, pasid: number): () => void {
    const at = slot * DEVICE_WORDS + 1;
    let dir = Atomics.load(this.devices, at) - 1;
    let newDir = false;
    if (dir < 0) {
      dir = this.#frames!.alloc();
      Atomics.store(this.devices, at, dir + 1);
      newDir = true;
    }
    const dirIndex = dir * 1024 + (pasid >>> PASID_DIR_BITS);
    let leaf = -1;
    if (Atomics.load(this.#i32, dirIndex) === 0) {
      try {
        leaf = this.#frames!.alloc();
      } catch (e) {
        if (newDir) this.#dropDir(at, dir);
        throw e;
      }
      Atomics.store(this.#i32, dirIndex, leaf + 1);
    }
    return () => {
      if (leaf >= 0) {
        Atomics.store(this.#i32, dirIndex, 0);
        this.#frames!.put(leaf);
      }
      if (newDir) this.#dropDir(at, dir);
    };
  }

  #dropDir(at: number, dir: number): void {
    Atomics.store(this.devices, at, 0);
    this.#frames!.put(dir);
  }

  /** Switches a PASID's domain (0 detaches) in one store. The table must be prepared. */
  setPasidDomain(slot: number, pasid: number, domain: number): void {
    const dir = Atomics.load(this.devices, slot * DEVICE_WORDS + 1) - 1;
    const leaf = Atomics.load(this.#i32, dir * 1024 + (pasid >>> PASID_DIR_BITS)) - 1;
    Atomics.store(this.#i32, leaf * 1024 + (pasid & PASID_LEAF_MASK), domain);
  }

  // ---- lookups (data plane, allocation-free) ------------------------------------------------

  /** A device's flags (DEV_ATS). */
  deviceFlags(slot: number): number {
    return slot >= 1 && slot < MAX_DEVICES ? this.devices[slot * DEVICE_WORDS + 3]! : 0;
  }

  /** The RID's domain index (0: none, also for a slot out of range). */
  ridDomain(slot: number): number {
    if (!(slot >= 1 && slot < MAX_DEVICES)) return 0;
    return Atomics.load(this.devices, slot * DEVICE_WORDS);
  }

  /** A PASID's domain index (0: none, also for a slot or a PASID out of the device's range). */
  pasidDomain(slot: number, pasid: number): number {
    if (!(slot >= 1 && slot < MAX_DEVICES)) return 0;
    if (!(pasid >= 0 && pasid >>> this.devices[slot * DEVICE_WORDS + 2]! === 0)) return 0;
    const dir = Atomics.load(this.devices, slot * DEVICE_WORDS + 1) - 1;
    if (dir < 0) return 0;
    const leaf = Atomics.load(this.#i32, dir * 1024 + (pasid >>> PASID_DIR_BITS)) - 1;
    if (leaf < 0) return 0;
    return Atomics.load(this.#i32, leaf * 1024 + (pasid & PASID_LEAF_MASK));
  }

  /**
   * A descriptor's format. A plain load suffices: the caller found `index` through an
   * `Atomics.load` of a device context word, which synchronizes with the `Atomics.store` that
   * published it, and the descriptor was written before that store and never changes while
   * it is reachable.
   */
  domainFormat(index: number): number {
    return this.domains[index * DOMAIN_WORDS]!;
  }

  /** A descriptor's packed walk configuration (see pgtable's packWalkConfig). */
  domainConfig(index: number): number {
    return this.domains[index * DOMAIN_WORDS + 2]!;
  }

  /** A descriptor's root table physical address. */
  domainRoot(index: number): number {
    return this.domains[index * DOMAIN_WORDS + 1]! >>> 0;
  }

  /**
   * A descriptor's root with its bits above 31 as well: for roots that may lie beyond 4 GiB (a
   * guest-physical address); {@link domainRoot} reads only bits 31:0, which physical roots fit.
   */
  domainRootFull(index: number): number {
    return this.domains[index * DOMAIN_WORDS + 4]! * 4294967296 + (this.domains[index * DOMAIN_WORDS + 1]! >>> 0);
  }

  /** A descriptor's flags ({@link DOMAIN_SHADOW}). */
  domainFlags(index: number): number {
    return this.domains[index * DOMAIN_WORDS + 5]!;
  }

  /** Sets descriptor flags of a published descriptor (the control plane, before any device is attached to it). */
  addDomainFlags(index: number, flags: number): void {
    Atomics.or(this.domains, index * DOMAIN_WORDS + 5, flags);
  }

  /** A nested descriptor's parent descriptor (0 for any other format). */
  domainParent(index: number): number {
    return this.domains[index * DOMAIN_WORDS + 3]!;
  }
}
