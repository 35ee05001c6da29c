/**
 * A QEMU-style SMMUv3: a model of the algorithms of QEMU 7.2's `arm-smmuv3` device
 * (hw/arm/smmuv3.c, hw/arm/smmu-common.c; reference/viommu-queues.md §3.1, §3.2, §6.3). It is
 * not QEMU: it is the baseline that ioasid's own SMMUv3 (vendor/smmuv3/iommu.ts) is measured
 * against, in the same harness, with the same guest and the same input.
 *
 * What is QEMU's: single-threaded, synchronous consumption of the whole command queue on the
 * CMDQ_PROD write (smmu-cmdq.ts); a 256-entry IOTLB hash table flushed whole when full, with a
 * full-table scan per non-exact invalidation (smmu-iotlb.ts); a per-device configuration cache
 * invalidated by CFGI_* (smmu-config-cache.ts); translation as `smmuv3_translate` does it:
 * configuration, IOTLB lookup, and on a miss a page walk and an insert. The ID registers default
 * to QEMU 7.2's: stage 1 only, range invalidation, no ATS, PRI, MSI or SubstreamIDs, 44-bit OAS.
 *
 * What is the project's, so that the comparison measures the caching and invalidation and not
 * the plumbing: the register file (vendor/smmuv3/regs.ts), the command decoder, the STE/CD fetch
 * (vendor/smmuv3/resolve.ts), the page walker (pgtable/arm/walk.ts, 4 KiB granule) and the event
 * records. One deviation on the hit path: an entry keeps the permissions its walk proved (the
 * access that filled it); a write that hits an entry proven for reads walks again and the walk
 * decides, where QEMU would keep the PTE's permissions in the entry. The outcome is the same.
 */
import type { GuestRam, PhysMemory } from '../memory/index.js';
import {
  Access,
  armS1Walk,
  cfgStartLevel,
  FaultReason,
  SMMU_EVT,
  TranslateFault,
  WalkFault,
} from '../pgtable/index.js';
import { IommufdError } from '../util/errors.js';
import { SmmuFeature } from '../vendor/smmuv3/commands.js';
import { SmmuEventWriter, type SmmuEventStats } from '../vendor/smmuv3/events.js';
import { CR0, STRTAB_FMT } from '../vendor/smmuv3/regs-defs.js';
import { smmuResolverCaps } from '../vendor/smmuv3/regs-caps.js';
import { SmmuRegisters, type SmmuRegisterOptions, type SmmuStreamTable } from '../vendor/smmuv3/regs.js';
import { SMMU_ABORT, SMMU_BYPASS, SMMU_CFG_FLAG, SMMU_RESOLVED, SmmuConfig } from '../vendor/smmuv3/resolve-config.js';
import { SmmuResolver } from '../vendor/smmuv3/resolve.js';
import { STE_CONFIG } from '../vendor/smmuv3/structures.js';
import { PhysQwordReader } from '../vendor/vtd/resolve-reader.js';
import type { QemuConfigCacheStats, QemuIotlbStats } from './counters.js';
import { baselineRam, type BaselineRamOptions } from './guest-memory.js';
import { QemuSmmuCmdq, type QemuCmdqStats } from './smmu-cmdq.js';
import { SmmuCachedConfig, SmmuConfigCache } from './smmu-config-cache.js';
import { SmmuIotlb, SmmuTlbEntry, STAGE1_VMID } from './smmu-iotlb.js';

/** Options of a QEMU-style SMMUv3: its ID registers (QEMU 7.2's by default) and its guest RAM. */
export interface QemuSmmuOptions extends SmmuRegisterOptions, BaselineRamOptions {}

/** A device's transaction: its StreamID (SubstreamIDs are refused, as QEMU 7.2 has none). */
export interface QemuSmmuRequest {
  sid: number;
  ssid?: number;
}

/** Counters of a QEMU-style SMMUv3. */
export interface QemuSmmuStats {
  /** The command queue's counters. */
  cmdq: QemuCmdqStats;
  /** The event queue writer's counters. */
  events: SmmuEventStats;
  /** Translations requested, faults among them, and bypassed transactions. */
  translations: number;
  faults: number;
  bypassed: number;
  iotlb: QemuIotlbStats;
  config: QemuConfigCacheStats;
}

/** QEMU 7.2's `smmuv3_init_regs`, as register options. */
const QEMU_7_2_REGISTERS: SmmuRegisterOptions = {
  stage1: true,
  stage2: false,
  ril: true,
  ats: false,
  pri: false,
  msi: false,
  ssidBits: 0,
  twoLevelCdTable: false,
  oas: 44,
  granule4k: true,
  granule16k: false,
  granule64k: false,
};

/** Every message of the unit (one place, STYLE.md). */
const ERRORS = {
  closed: 'this QEMU-style SMMUv3 was closed',
  unsupported: (name: string) => `${name}: the QEMU 7.2 model implements stage 1 with 4 KiB granules only`,
} as const;

/** Options QEMU 7.2 (or the 4 KiB-only walker) does not have, and the value that asks for them. */
const UNSUPPORTED: readonly (readonly [keyof SmmuRegisterOptions, unknown])[] = [
  ['stage2', true],
  ['ats', true],
  ['pri', true],
  ['stall', true],
  ['granule16k', true],
  ['granule64k', true],
];

/** The register options of `opts` (without the unit's guest RAM). */
function registerOptions(opts: QemuSmmuOptions): SmmuRegisterOptions {
  const o: Record<string, unknown> = { ...opts };
  delete o['guestRamBytes'];
  delete o['ram'];
  return o;
}

/** The 4 KiB granule's TG field and log2. */
const TG_4K = 1;
const GRANULE_4K = 12;

/** A QEMU-style SMMUv3 (see the file comment). */
export class QemuSmmuUnit {
  /** The register pages. */
  readonly regs: SmmuRegisters;
  /** Guest RAM. */
  readonly ram: GuestRam;
  /** Guest RAM as guest-physical memory (address 0 = GPA 0). */
  readonly guest: PhysMemory;
  /** The SMMU event type of the last translation that faulted (0 when it had none). */
  lastEvent = 0;
  readonly #ownsRam: boolean;
  readonly #iotlb = new SmmuIotlb();
  readonly #configs = new SmmuConfigCache();
  readonly #cmdq: QemuSmmuCmdq;
  readonly #resolver: SmmuResolver;
  readonly #events: SmmuEventWriter;
  readonly #cfg = new SmmuConfig();
  readonly #uncached = new SmmuCachedConfig();
  readonly #fault = new WalkFault();
  #closed = false;
  readonly #stats = { translations: 0, faults: 0, bypassed: 0 };

  /** A unit with QEMU 7.2's ID registers, overridden by `opts`; RangeError for what the model lacks. */
  constructor(opts: QemuSmmuOptions = {}) {
    for (const [name, value] of UNSUPPORTED) {
      if (opts[name] === value) throw new RangeError(ERRORS.unsupported(name));
    }
    this.regs = new SmmuRegisters(
      { ...QEMU_7_2_REGISTERS, ...registerOptions(opts) },
      {
        cmdqDoorbell: () => this.#cmdq.consume(),
        // QEMU keeps its caches over these; dropping them costs nothing in a replay (they happen
        // at probe) and keeps a guest that skips CFGI_ALL from seeing an old table's entries.
        controlChanged: (_ack, changed) => {
          if ((changed & CR0.SMMUEN) !== 0) this.#dropEverything();
        },
        streamTableChanged: (t) => this.#latchStreamTable(t),
        msiWrite: (addr, data) => this.#writeWord(addr, data),
      },
    );
    const r = baselineRam(opts);
    this.ram = r.ram;
    this.guest = r.guest;
    this.#ownsRam = r.owned;
    const o = this.regs.options;
    const mem = this.guest.i32;
    this.#resolver = new SmmuResolver(new PhysQwordReader(mem), { ...smmuResolverCaps(o), s2p: false, ats: false });
    this.#events = new SmmuEventWriter(this.regs, (addr, words) => this.#writeRecord(addr, words));
    const features = (o.stage1 ? SmmuFeature.Stage1 : 0) | (o.ril ? SmmuFeature.Ril : 0);
    this.#cmdq = new QemuSmmuCmdq(this.regs, mem, features, this.#iotlb, this.#configs);
  }

  /** An MMIO read of the register pages (size 4 or 8; see SmmuRegisters). */
  mmioRead(offset: number, size: 4 | 8): number | bigint {
    return this.regs.mmioRead(offset, size);
  }

  /** An MMIO write; a CMDQ_PROD write consumes the whole command queue before it returns. */
  mmioWrite(offset: number, value: number | bigint, size: 4 | 8): void {
    if (this.#closed) throw new IommufdError('EBADF', ERRORS.closed);
    this.regs.mmioWrite(offset, value, size);
  }

  /** The unit's counters. */
  stats(): QemuSmmuStats {
    return {
      ...this.#stats,
      cmdq: this.#cmdq.stats(),
      events: this.#events.stats(),
      iotlb: this.#iotlb.stats(),
      config: this.#configs.stats(),
    };
  }

  /** Releases guest RAM (if the unit allocated it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cmdq.stop();
    if (this.#ownsRam) this.ram.release();
  }

  /**
   * Translates a transaction (`smmuv3_translate`): the host physical address of `iova` for
   * `access` (Access bits), or a negative TranslateFault. A fault is recorded in the event queue
   * as the configuration says; `lastEvent` has its event type.
   */
  translate(req: QemuSmmuRequest, iova: number, access: number): number {
    this.#stats.translations++;
    this.lastEvent = 0;
    const regs = this.regs;
    if (!regs.smmuEnabled) {
      if (regs.bypassAbort) return this.#terminated(TranslateFault.NoDomain);
      return this.#bypass(iova);
    }
    const sid = req.sid;
    const ssid = req.ssid ?? -1;
    const c = this.#config(sid, ssid, iova, access);
    if (c === undefined || c.kind === STE_CONFIG.Abort) return this.#terminated(TranslateFault.NoDomain);
    if (c.kind === STE_CONFIG.Bypass) return this.#bypass(iova);
    const f = this.#fault;
    if (c.kind !== STE_CONFIG.S1 || c.ttb0Cfg === 0 || c.granule0 !== GRANULE_4K) {
      // TTB0 disabled, or a region the model does not walk: a Translation fault.
      f.set(TranslateFault.NotMapped, 0, FaultReason.Aperture, iova, SMMU_EVT.F_TRANSLATION);
      return this.#walkFault(sid, ssid, iova, access, c, TranslateFault.NotMapped);
    }
    const e = this.#iotlb.lookup(c.asid, STAGE1_VMID, iova, cfgStartLevel(c.ttb0Cfg), GRANULE_4K);
    if (e !== undefined && ((access & Access.Write) === 0 || (e.perm & Access.Write) !== 0)) {
      const pa = this.ram.gpaToPa(e.gpa + (iova % e.size));
      return pa >= 0 ? pa : this.#terminated(TranslateFault.WalkAbort);
    }
    const gpa = armS1Walk(this.guest.i32, c.ttb0, c.ttb0Cfg, iova, access, f);
    if (gpa < 0) return this.#walkFault(sid, ssid, iova, access, c, gpa);
    const pa = this.ram.gpaToPa(gpa);
    if (pa < 0) return this.#terminated(TranslateFault.WalkAbort);
    const size = 2 ** f.leafShift;
    const offset = iova % size;
    const perm = Access.Read | (access & Access.Write);
    this.#iotlb.insert(
      new SmmuTlbEntry(c.asid, STAGE1_VMID, iova - offset, TG_4K, 3 - (f.leafShift - 12) / 9, size, gpa - offset, perm),
    );
    return pa;
  }

  /**
   * The configuration of (`sid`, `ssid`): cached per device (`smmuv3_get_config`), or fetched
   * and decoded. A fetch that fails records its event and returns undefined (nothing is cached).
   */
  #config(sid: number, ssid: number, iova: number, access: number): SmmuCachedConfig | undefined {
    if (ssid < 0) {
      const hit = this.#configs.lookup(sid);
      if (hit !== undefined) return hit;
    }
    const out = this.#cfg;
    const r = this.#resolver.resolve(sid, ssid, out);
    if (r !== SMMU_RESOLVED && r !== SMMU_BYPASS && r !== SMMU_ABORT) {
      this.#events.configFault(sid, ssid, out, iova, access);
      this.lastEvent = out.event;
      return undefined;
    }
    const c = ssid < 0 ? this.#configs.fill(sid) : this.#uncached;
    c.kind = r === SMMU_ABORT ? STE_CONFIG.Abort : r === SMMU_BYPASS ? STE_CONFIG.Bypass : out.kind;
    c.asid = out.asid < 0 ? 0 : out.asid;
    c.vmid = STAGE1_VMID;
    c.ttb0 = out.ttb0;
    c.ttb0Cfg = out.ttb0Cfg;
    c.granule0 = out.granule0;
    c.flags = out.flags;
    return c;
  }

  #walkFault(sid: number, ssid: number, iova: number, access: number, c: SmmuCachedConfig, code: number): number {
    const f = this.#fault;
    this.lastEvent = f.words[4]!;
    this.#events.walkFault(sid, ssid, iova, access, f, (c.flags & SMMU_CFG_FLAG.CD_R) !== 0, false, false);
    return this.#terminated(code);
  }

  #bypass(iova: number): number {
    this.#stats.bypassed++;
    const pa = this.ram.gpaToPa(iova);
    return pa >= 0 ? pa : this.#terminated(TranslateFault.WalkAbort);
  }

  #terminated(code: number): number {
    this.#stats.faults++;
    return code;
  }

  #latchStreamTable(t: SmmuStreamTable): void {
    const r = this.#resolver;
    r.strtabBase = t.address;
    r.fmt = t.format === '2-level' ? STRTAB_FMT.TwoLevel : STRTAB_FMT.Linear;
    r.log2size = t.log2Size;
    r.split = t.split;
    this.#dropEverything();
  }

  #dropEverything(): void {
    this.#configs.clear();
    this.#iotlb.reset();
  }

  /** A 32-bit store into guest RAM (an MSI); false outside guest RAM or unaligned. */
  #writeWord(addr: number, data: number): boolean {
    if (addr % 4 !== 0 || addr + 4 > this.ram.bytes) return false;
    this.guest.i32[addr / 4] = data | 0;
    return true;
  }

  /** An event record store into guest RAM; false (an abort) outside guest RAM. */
  #writeRecord(addr: number, words: Int32Array): boolean {
    if (addr % 4 !== 0 || addr + words.length * 4 > this.ram.bytes) return false;
    this.guest.i32.set(words, addr / 4);
    return true;
  }
}
