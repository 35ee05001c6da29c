/**
 * Replays a QEMU 7.2 intel-iommu trace (traces/README.md, "VT-d"): each doorbell
 * (`vtd_inv_qi_tail`) collects the raw descriptors QEMU fetched for it (`vtd_inv_qi_head` +
 * `vtd_inv_desc`), which are written into the guest's queue as they are and rung with one IQT
 * write when the next doorbell, a translation or another register write arrives (QEMU's side
 * effects and other threads' events may come in between). QEMU's decoded descriptor
 * lines restate the raw ones; its own cache resets are skipped; a slot that QEMU read but did
 * not trace (the PASID-cache and PASID-IOTLB descriptors of scalable mode) is counted and left
 * out, since nothing of it is known.
 *
 * `-xlate` traces (`vtd_dmar_translate`): a device is attached at its first translation. The
 * trace names its domain id only in the invalidation that follows its first unmap, so until
 * then it runs in a domain of its own under a DID the trace does not use; the first
 * invalidation of an unknown DID that covers one of its mappings re-attaches it under that DID
 * (a context change the replay invalidates itself, counted in `setup.setupCommands`). Mappings
 * are made and removed as mappings.ts describes. Translations need legacy context entries:
 * in scalable mode they are counted as unsupported.
 */
import { Access } from '../pgtable/index.js';
import { descriptorSpec, DescType, GRAN, PIOTLB_GRAN } from '../vendor/vtd/descriptors.js';
import { ByteNameTable } from './byte-names.js';
import { Bad, LineCounts, Skip, sorted } from './counts.js';
import { Ev } from './events.js';
import type { TraceEvent } from './line-parser.js';
import { MapOutcome, TraceMappings, type ReplayDomain } from './mappings.js';
import { ReplayCounters, type TraceReplayer } from './replayer.js';
import type { ReplayDevice, ReplaySetup } from './types.js';
import type { VtdTraceGuest } from './vtd-guest.js';

/**
 * QEMU's names of descriptor types in `vtd_inv_desc` lines, and the type each one is (7.2 traces
 * the first five; the PASID ones are later QEMUs' names).
 */
const TRACE_TYPE_NAMES = ['context-cache', 'iotlb', 'device', 'iec', 'wait', 'piotlb', 'pasid-cache', 'pasid-device'];
const TRACE_TYPES = [
  DescType.ContextCache,
  DescType.Iotlb,
  DescType.DeviceTlb,
  DescType.Iec,
  DescType.Wait,
  DescType.PasidIotlb,
  DescType.PasidCache,
  DescType.PasidDeviceTlb,
];
const TYPE_NAMES = new ByteNameTable(TRACE_TYPE_NAMES);

/** Most descriptors one doorbell can carry (the trace's queue has 256 slots). */
const MAX_BATCH = 4096;
/** Data pages that translations' targets are folded onto (mappings.ts). */
const DATA_PAGES = 1024;

/** A device of the trace. */
interface Device {
  readonly sid: number;
  did: number;
  domain: ReplayDomain;
  /** Attached under a DID of the replay's own until an invalidation names its real one. */
  provisional: boolean;
  learnt: ReplayDevice['learnt'];
}

/** The VT-d replayer. */
export class VtdReplayer implements TraceReplayer {
  readonly counters = new ReplayCounters();
  readonly #guest: VtdTraceGuest;
  readonly #counts: LineCounts;
  readonly #scalable: boolean;
  /** The open doorbell's descriptors, 4 words each. */
  readonly #batch = new Uint32Array(MAX_BATCH * 4);
  #batchCount = 0;
  #open = false;
  /** A `vtd_inv_qi_head` whose descriptor line has not come (yet). */
  #slotPending = false;
  readonly #byType = new Float64Array(128);
  readonly #devices = new Map<number, Device>();
  readonly #deviceOrder: Device[] = [];
  /** Domains by DID (real and provisional). */
  readonly #domains = new Map<number, ReplayDomain>();
  readonly #dids = new Set<number>();
  #mappings: TraceMappings | undefined;
  #nextProvisionalDid: number;

  /** A replayer over `guest`, counting lines into `counts`. */
  constructor(guest: VtdTraceGuest, counts: LineCounts, scalable: boolean) {
    this.#guest = guest;
    this.#counts = counts;
    this.#scalable = scalable;
    this.#nextProvisionalDid = 2 ** guest.driver.caps.didBits - 1;
  }

  onEvent(ev: number, e: TraceEvent): void {
    const counts = this.#counts;
    switch (ev) {
      // The doorbell and what QEMU fetched for it.
      case Ev.VtdInvQiTail:
        this.#flush();
        this.#open = true;
        return;
      case Ev.VtdInvQiFetch:
        this.#open = true;
        return;
      case Ev.VtdInvQiHead:
        if (this.#slotPending) counts.skip(Skip.UntracedSlot, Ev.VtdInvQiHead);
        if (!this.#open) counts.bad(Bad.Orphan, Ev.VtdInvQiHead);
        this.#slotPending = this.#open;
        return;
      case Ev.VtdInvDesc:
        this.#descriptor(e);
        return;
      case Ev.VtdInvDescCcDevice:
      case Ev.VtdInvDescCcDevices:
      case Ev.VtdInvDescCcDomain:
      case Ev.VtdInvDescCcGlobal:
      case Ev.VtdInvDescIec:
      case Ev.VtdInvDescIotlbDomain:
      case Ev.VtdInvDescIotlbGlobal:
      case Ev.VtdInvDescIotlbPages:
      case Ev.VtdInvDescWaitIrq:
      case Ev.VtdInvDescWaitSw:
        counts.skip(Skip.Decoded, ev);
        return;
      case Ev.VtdInvDescCcInvalid:
      case Ev.VtdInvDescInvalid:
      case Ev.VtdInvDescIotlbInvalid:
      case Ev.VtdInvDescWaitInvalid:
      case Ev.VtdInvDescWaitWriteFail:
        counts.skip(Skip.TraceError, ev);
        return;
      // QEMU's side effects of a descriptor (a context invalidation switches address spaces),
      // and events of other threads: they neither end the doorbell nor depend on it.
      case Ev.VtdIotlbReset:
      case Ev.VtdContextCacheReset:
      case Ev.VtdSwitchAddressSpace:
      case Ev.VtdAsUnmapWhole:
        counts.skip(Skip.QemuInternal, ev);
        return;
      case Ev.GuestConsole:
        counts.skip(Skip.Console, ev);
        return;
      case Ev.VirtioBlkHandleRead:
      case Ev.VirtioBlkHandleWrite:
        counts.skip(Skip.Device, ev);
        return;
      default:
        break;
    }
    // A translation, or the guest's next register write, comes after the doorbell: what it
    // fetched takes effect first.
    this.#flush();
    switch (ev) {
      case Ev.VtdDmarTranslate:
        this.#translate(e);
        return;
      case Ev.VtdDmarEnable:
      case Ev.VtdInvQiEnable:
      case Ev.VtdInvQiSetup:
      case Ev.VtdIrEnable:
      case Ev.VtdRegDmarRoot:
      case Ev.VtdRegIcsClearIp:
      case Ev.VtdRegIrRoot:
      case Ev.VtdRegWriteFectl:
      case Ev.VtdRegWriteGcmd:
      case Ev.VtdRegWriteIectl:
        counts.skip(Skip.Setup, ev);
        return;
      case Ev.VtdCeNotPresent:
      case Ev.VtdDmarFault:
      case Ev.VtdFaultDisabled:
      case Ev.VtdFrrNew:
      case Ev.VtdFstsClearIp:
      case Ev.VtdFstsPpf:
      case Ev.VtdReNotPresent:
      case Ev.VtdWarnInvalidQiTail:
      case Ev.VtdWarnIrTrigger:
        counts.skip(Skip.TraceError, ev);
        return;
      default:
        // An SMMUv3 event in a VT-d trace.
        counts.bad(Bad.Inconsistent, ev);
    }
  }

  finish(): void {
    this.#flush();
  }

  /** A raw descriptor line: checked against its type name, then queued in the open doorbell. */
  #descriptor(e: TraceEvent): void {
    const counts = this.#counts;
    const named = TYPE_NAMES.lookup(e.buf, e.strStart[0]!, e.strEnd[0]!);
    const lo0 = e.lo[1]!; // low qword bits 31:0 (the line prints high first)
    const type = (lo0 & 0xf) | ((lo0 >>> 5) & 0x70);
    if (!this.#open || !this.#slotPending) {
      counts.bad(Bad.Orphan, Ev.VtdInvDesc);
      return;
    }
    this.#slotPending = false;
    if (named < 0 || TRACE_TYPES[named] !== type) {
      counts.bad(Bad.Inconsistent, Ev.VtdInvDesc);
      return;
    }
    if (this.#batchCount === MAX_BATCH) {
      // A doorbell longer than any queue: rung in parts.
      this.#flush();
      this.#open = true;
    }
    const at = this.#batchCount * 4;
    const b = this.#batch;
    b[at] = e.lo[1]!;
    b[at + 1] = e.hi[1]!;
    b[at + 2] = e.lo[0]!;
    b[at + 3] = e.hi[0]!;
    this.#batchCount++;
  }

  /** Rings the open doorbell: mapping upkeep first, then the descriptors into the ring and IQT. */
  #flush(): void {
    if (!this.#open) return;
    this.#open = false;
    if (this.#slotPending) {
      this.#counts.skip(Skip.UntracedSlot, Ev.VtdInvQiHead);
      this.#slotPending = false;
    }
    const n = this.#batchCount;
    this.#batchCount = 0;
    if (n === 0) {
      this.#counts.skip(Skip.EmptyDoorbell, Ev.VtdInvQiTail);
      return;
    }
    const b = this.#batch;
    const guest = this.#guest;
    const c = this.counters;
    let waits = 0;
    for (let i = 0; i < n; i++) {
      const w0 = b[i * 4]!;
      const type = (w0 & 0xf) | ((w0 >>> 5) & 0x70);
      this.#byType[type]!++;
      if (type === DescType.Wait) waits++;
      else if (type === DescType.Iotlb || type === DescType.PasidIotlb) this.#invalidated(b, i * 4, type);
    }
    for (let i = 0; i < n; i++) {
      if (!guest.hasRoom(1)) this.#ring(0);
      guest.put(b, i * 4);
    }
    this.#ring(waits);
    c.commands += n;
  }

  #ring(waits: number): void {
    const r = this.#guest.ring();
    const c = this.counters;
    c.doorbells++;
    c.commandErrors += r.rejected + r.lostWaits;
    c.barriers += Math.max(0, waits - r.lostWaits);
  }

  /**
   * An IOTLB or PASID-IOTLB descriptor about to be queued: its DID is recorded; with translations,
   * a device still under a provisional DID whose mappings it covers is re-attached under it, and
   * the mappings it covers are removed.
   */
  #invalidated(b: Uint32Array, at: number, type: number): void {
    const w0 = b[at]!;
    const g = (w0 >>> 4) & 3;
    const did = (w0 >>> 16) & 0xffff;
    const global = type === DescType.Iotlb && g === GRAN.Global;
    if (!global) this.#dids.add(did);
    const m = this.#mappings;
    if (m === undefined) return;
    if (global) {
      for (const d of this.#domains.values()) m.removeAll(d);
      return;
    }
    // Page-selective forms: 2^AM pages aligned on 2^AM; the rest is the whole domain.
    const ranged = type === DescType.Iotlb ? g === GRAN.Selective : g === PIOTLB_GRAN.Pages;
    let first = 0;
    let pages = Infinity;
    if (ranged) {
      const am = b[at + 2]! & 0x3f;
      pages = 2 ** am;
      const page = (b[at + 3]! * 2 ** 32 + ((b[at + 2]! & 0xfffff000) >>> 0)) / 4096;
      first = page - (page % pages);
    }
    let domain = this.#domains.get(did);
    if (domain === undefined) domain = this.#learnDid(did, first, pages);
    if (domain === undefined) return;
    if (ranged) m.removeRange(domain, first, pages);
    else m.removeAll(domain);
  }

  /** The first invalidation of `did`: the provisional device whose mappings it covers now runs under it. */
  #learnDid(did: number, first: number, pages: number): ReplayDomain | undefined {
    const m = this.#mappings!;
    for (const dev of this.#deviceOrder) {
      if (!dev.provisional || !m.covers(dev.domain, first, pages)) continue;
      const old = dev.did;
      this.#domains.delete(old);
      dev.did = did;
      dev.provisional = false;
      dev.learnt = 'invalidation';
      this.#domains.set(did, dev.domain);
      this.counters.setupCommands += this.#guest.rebind(dev.sid, dev.domain, did, old);
      return dev.domain;
    }
    return undefined;
  }

  /** `vtd_dmar_translate dev BB:DD.F iova I -> gpa G mask M`. */
  #translate(e: TraceEvent): void {
    const n = e.nums;
    const bus = n[0]!;
    const slot = n[1]!;
    const fn = n[2]!;
    if (bus > 0xff || slot > 0x1f || fn > 7) {
      this.#counts.bad(Bad.Malformed, Ev.VtdDmarTranslate);
      return;
    }
    if (this.#scalable) {
      this.#counts.bad(Bad.Unencodable, Ev.VtdDmarTranslate);
      return;
    }
    const sid = (bus << 8) | (slot << 3) | fn;
    const dev = this.#devices.get(sid) ?? this.#newDevice(sid);
    const iova = n[3]!;
    const m = this.#mappings!;
    const c = this.counters;
    c.translations++;
    if (m.ensure(dev.domain, iova, n[4]!, 3) === MapOutcome.Replaced) {
      this.#counts.bad(Bad.Inconsistent, Ev.VtdDmarTranslate);
    }
    const unit = this.#guest.unit;
    const pa = unit.translate({ sid }, iova, Access.Read);
    if (pa < 0) c.translationFaults++;
    else if (pa !== unit.ram.gpaToPa(m.lastGpa)) c.translationMismatches++;
  }

  /** A device seen for the first time in a translation: attached under a provisional DID. */
  #newDevice(sid: number): Device {
    const guest = this.#guest;
    this.#mappings ??= new TraceMappings(guest.driver.frames, DATA_PAGES);
    while (this.#dids.has(this.#nextProvisionalDid) || this.#domains.has(this.#nextProvisionalDid))
      this.#nextProvisionalDid--;
    const did = this.#nextProvisionalDid--;
    const domain = guest.newDomain();
    guest.attach(sid, domain, did);
    const dev: Device = { sid, did, domain, provisional: true, learnt: 'first-translation' };
    this.#devices.set(sid, dev);
    this.#deviceOrder.push(dev);
    this.#domains.set(did, domain);
    return dev;
  }

  commandKinds(): Record<string, number> {
    const out: Record<string, number> = {};
    this.#byType.forEach((count, type) => {
      if (count > 0) out[descriptorSpec(type)?.name ?? `type-0x${type.toString(16)}`] = count;
    });
    return sorted(out);
  }

  mappingCounts(): { mapped: number; unmapped: number } {
    return { mapped: this.#mappings?.mapped ?? 0, unmapped: this.#mappings?.unmapped ?? 0 };
  }

  setup(): ReplaySetup {
    return {
      scalable: this.#scalable,
      devices: this.#deviceOrder.map((d) => ({ sid: d.sid, did: d.did, learnt: d.learnt })),
      domainTags: [...this.#dids].sort((a, b) => a - b),
      setupCommands: this.counters.setupCommands,
    };
  }
}
