/**
 * Replays a QEMU 7.2 smmuv3 trace (traces/README.md, "SMMUv3"). Each command is rebuilt from its
 * lines (smmu-commands.ts); the commands between two `smmuv3_cmdq_consume_out` lines are one
 * doorbell, written into the guest's CMDQ and rung with one CMDQ_PROD write. A command that
 * cannot be rebuilt is counted as `unencodable:NAME` and left out. `smmu_iotlb_inv_all` outside
 * a TLBI_NH_ALL or TLBI_NSNH_ALL is QEMU emptying its full IOTLB, and is skipped.
 *
 * Devices: Linux attaches a device with CFGI_STE (+ SYNC) twice, PREFETCH_CONFIG, then the
 * domain's TLBI_NH_ASID; the first TLBI_NH_ASID of an unknown ASID after a CFGI_STE of an
 * unknown StreamID attaches that StreamID with that ASID. A translation from a StreamID never
 * attached so attaches it with the lowest free ASID (Linux's allocation order). Mappings behind
 * `-xlate` translations are made and removed as mappings.ts describes: a TLBI_NH_VA removes the
 * pages of its range, a TLBI_NH_ASID those of its domain, a TLBI_NH_ALL or NSNH_ALL all of them.
 */
import { Access } from '../pgtable/index.js';
import { COMMANDS, Opcode } from '../vendor/smmuv3/commands.js';
import { Bad, LineCounts, Skip, sorted } from './counts.js';
import { Ev } from './events.js';
import type { TraceEvent } from './line-parser.js';
import { MapOutcome, TraceMappings, type ReplayDomain } from './mappings.js';
import { ReplayCounters, type TraceReplayer } from './replayer.js';
import { Built, FieldLine, isU32, SmmuCommandBuilder } from './smmu-commands.js';
import type { SmmuTraceGuest } from './smmu-guest.js';
import type { ReplayDevice, ReplaySetup } from './types.js';

/** Data pages that translations' targets are folded onto (mappings.ts). */
const DATA_PAGES = 1024;
const WORDS = 4;

/** A device of the trace. */
interface Device {
  readonly sid: number;
  readonly asid: number;
  readonly domain: ReplayDomain;
  readonly learnt: ReplayDevice['learnt'];
}

/** The SMMUv3 replayer. */
export class SmmuReplayer implements TraceReplayer {
  readonly counters = new ReplayCounters();
  readonly #guest: SmmuTraceGuest;
  readonly #counts: LineCounts;
  readonly #cmd = new SmmuCommandBuilder();
  /** The open doorbell's commands, 4 words each. */
  readonly #batch: Uint32Array;
  #batchCount = 0;
  #batchSyncs = 0;
  readonly #byOpcode = new Float64Array(256);
  /** The StreamID of the last CFGI_STE (PREFETCH_CONFIG's, which QEMU does not print). */
  #lastSteSid = -1;
  /** StreamIDs whose CFGI_STE came before any domain was known for them. */
  readonly #pendingSids: number[] = [];
  readonly #devices = new Map<number, Device>();
  /** Domains by ASID. */
  readonly #domains = new Map<number, ReplayDomain>();
  readonly #asidsSeen = new Set<number>();
  #mappings: TraceMappings | undefined;

  /** A replayer over `guest`, counting lines into `counts`. */
  constructor(guest: SmmuTraceGuest, counts: LineCounts) {
    this.#guest = guest;
    this.#counts = counts;
    this.#batch = new Uint32Array((guest.capacity + 1) * WORDS);
  }

  onEvent(ev: number, e: TraceEvent): void {
    const counts = this.#counts;
    const cmd = this.#cmd;
    const n = e.nums;
    switch (ev) {
      case Ev.Smmuv3CmdqConsume:
        if (cmd.open) this.#emit();
        cmd.begin();
        return;
      case Ev.Smmuv3CmdqOpcode: {
        const s = cmd.opcodeLine(e.buf, e.strStart[0]!, e.strEnd[0]!);
        if (s !== FieldLine.Ok) counts.bad(s === FieldLine.Orphan ? Bad.Orphan : Bad.Malformed, ev);
        return;
      }
      case Ev.Smmuv3S1RangeInval:
        this.#fieldStatus(cmd.rangeLine(n), ev);
        return;
      case Ev.Smmuv3CmdqTlbiNhAsid:
        this.#fieldStatus(cmd.fieldLine(Opcode.TlbiNhAsid, -1, n[0]!), ev);
        return;
      case Ev.Smmuv3CmdqCfgiSte:
        this.#fieldStatus(cmd.fieldLine(Opcode.CfgiSte, -1, n[0]!), ev);
        return;
      case Ev.Smmuv3CmdqCfgiSteRange:
        this.#fieldStatus(cmd.fieldLine(Opcode.CfgiSteRange, -1, n[0]!, n[1]), ev);
        return;
      case Ev.Smmuv3CmdqCfgiCd:
        this.#fieldStatus(cmd.fieldLine(Opcode.CfgiCd, Opcode.CfgiCdAll, n[0]!), ev);
        return;
      case Ev.Smmuv3CmdqTlbiNh:
        this.#fieldStatus(cmd.markLine(Opcode.TlbiNsnhAll, Opcode.TlbiNhAll), ev);
        return;
      case Ev.SmmuIotlbInvAll: {
        const ofCommand = cmd.markLine(Opcode.TlbiNsnhAll, Opcode.TlbiNhAll) === FieldLine.Ok;
        counts.skip(ofCommand ? Skip.Decoded : Skip.QemuInternal, ev);
        return;
      }
      case Ev.SmmuIotlbInvAsid:
      case Ev.SmmuIotlbInvIova:
      case Ev.Smmuv3ConfigCacheInv:
      case Ev.Smmuv3UnhandledCmd:
        counts.skip(Skip.Decoded, ev);
        return;
      case Ev.Smmuv3InvNotifiersIova:
      case Ev.Smmuv3DecodeCd:
      case Ev.Smmuv3DecodeCdTt:
        counts.skip(Skip.QemuInternal, ev);
        return;
      case Ev.Smmuv3CmdqConsumeError:
      case Ev.Smmuv3RecordEvent:
      case Ev.Smmuv3TranslateAbort:
      case Ev.Smmuv3WriteGerror:
      case Ev.Smmuv3WriteGerrorn:
        counts.skip(Skip.TraceError, ev);
        return;
      case Ev.Smmuv3CmdqConsumeOut:
        if (cmd.open) this.#emit();
        if (this.#batchCount > 0) this.#ring();
        else counts.skip(Skip.EmptyDoorbell, ev);
        return;
      case Ev.Smmuv3WriteMmio:
        // CMDQ_PROD is printed after QEMU consumed what it rang: the doorbell replayed above.
        counts.skip(n[0] === 0x98 ? Skip.Decoded : Skip.Setup, ev);
        return;
      case Ev.Smmuv3TranslateSuccess:
        this.#flush();
        this.#translate(n[0]!, n[1]!, n[2]!, n[3]!);
        return;
      case Ev.GuestConsole:
        counts.skip(Skip.Console, ev);
        return;
      case Ev.VirtioBlkHandleRead:
      case Ev.VirtioBlkHandleWrite:
        counts.skip(Skip.Device, ev);
        return;
      default:
        // A VT-d event in an SMMUv3 trace.
        counts.bad(Bad.Inconsistent, ev);
    }
  }

  finish(): void {
    this.#flush();
  }

  #fieldStatus(status: number, ev: number): void {
    if (status === FieldLine.Orphan) this.#counts.bad(Bad.Orphan, ev);
    else if (status === FieldLine.Inconsistent) this.#counts.bad(Bad.Inconsistent, ev);
  }

  /** Closes the open command: rebuilt into the doorbell, after its device and mapping upkeep. */
  #emit(): void {
    const cmd = this.#cmd;
    if (this.#batchCount === this.#guest.capacity) this.#ring();
    const status = cmd.build(this.#batch, this.#batchCount * WORDS, this.#lastSteSid);
    if (status === Built.NoOpcode) {
      this.#counts.bad(Bad.Orphan, Ev.Smmuv3CmdqConsume);
      return;
    }
    if (status === Built.Unencodable) {
      this.#counts.badNamed(`unencodable:${cmd.name}`);
      return;
    }
    const op = cmd.opcode;
    const m = this.#mappings;
    switch (op) {
      case Opcode.Sync:
        this.#batchSyncs++;
        break;
      case Opcode.CfgiSte:
        this.#lastSteSid = cmd.sid;
        if (!this.#devices.has(cmd.sid) && !this.#pendingSids.includes(cmd.sid)) this.#pendingSids.push(cmd.sid);
        break;
      case Opcode.TlbiNhAsid: {
        this.#bind(cmd.asid);
        const d = this.#domains.get(cmd.asid);
        if (m !== undefined && d !== undefined) m.removeAll(d);
        break;
      }
      case Opcode.TlbiNhVa:
      case Opcode.TlbiNhVaa:
        if (m !== undefined) {
          for (const [asid, d] of this.#domains) {
            if (op === Opcode.TlbiNhVaa || asid === cmd.asid) m.removeRange(d, cmd.addr / 4096, cmd.bytes / 4096);
          }
        }
        break;
      case Opcode.TlbiNhAll:
      case Opcode.TlbiNsnhAll:
        if (m !== undefined) for (const d of this.#domains.values()) m.removeAll(d);
        break;
    }
    this.#byOpcode[op]!++;
    this.#batchCount++;
  }

  /** Rings what is pending (a doorbell interrupted by a translation, or the end of the input). */
  #flush(): void {
    if (this.#cmd.open && this.#cmd.hasOpcode) this.#emit();
    if (this.#batchCount > 0) this.#ring();
  }

  #ring(): void {
    const n = this.#batchCount;
    const syncs = this.#batchSyncs;
    this.#batchCount = 0;
    this.#batchSyncs = 0;
    const r = this.#guest.issue(this.#batch, n);
    const c = this.counters;
    c.doorbells++;
    c.commands += n;
    c.commandErrors += r.rejected + (r.drained ? 0 : 1);
    if (r.drained) c.barriers += syncs;
  }

  /** A TLBI_NH_ASID of `asid`: the StreamIDs whose CFGI_STE came since the last bind get its domain. */
  #bind(asid: number): void {
    this.#asidsSeen.add(asid);
    if (this.#pendingSids.length === 0 || this.#domains.has(asid)) return;
    for (const sid of this.#pendingSids.splice(0)) this.#attach(sid, asid, 'attach');
  }

  #attach(sid: number, asid: number, learnt: ReplayDevice['learnt']): Device {
    const domain = this.#guest.install(sid, asid, this.#domains.get(asid));
    this.#domains.set(asid, domain);
    const dev: Device = { sid, asid, domain, learnt };
    this.#devices.set(sid, dev);
    const p = this.#pendingSids.indexOf(sid);
    if (p >= 0) this.#pendingSids.splice(p, 1);
    return dev;
  }

  /** `smmuv3_translate_success … sid iova translated perm`. */
  #translate(sid: number, iova: number, pa: number, perm: number): void {
    const c = this.counters;
    if (!isU32(sid) || perm > 3) {
      this.#counts.bad(Bad.Malformed, Ev.Smmuv3TranslateSuccess);
      return;
    }
    let dev = this.#devices.get(sid);
    if (dev === undefined) {
      let asid = 1;
      while (this.#domains.has(asid)) asid++;
      dev = this.#attach(sid, asid, 'first-translation');
    }
    this.#mappings ??= new TraceMappings(this.#guest.driver.frames, DATA_PAGES);
    const m = this.#mappings;
    const prot = perm === 0 ? Access.Read : perm;
    c.translations++;
    if (m.ensure(dev.domain, iova, pa, prot) === MapOutcome.Replaced) {
      this.#counts.bad(Bad.Inconsistent, Ev.Smmuv3TranslateSuccess);
    }
    const unit = this.#guest.unit;
    const got = unit.translate({ sid }, iova, prot);
    if (got < 0) c.translationFaults++;
    else if (got !== unit.ram.gpaToPa(m.lastGpa)) c.translationMismatches++;
  }

  commandKinds(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of COMMANDS) if (this.#byOpcode[c.opcode]! > 0) out[c.name] = this.#byOpcode[c.opcode]!;
    return sorted(out);
  }

  mappingCounts(): { mapped: number; unmapped: number } {
    return { mapped: this.#mappings?.mapped ?? 0, unmapped: this.#mappings?.unmapped ?? 0 };
  }

  setup(): ReplaySetup {
    return {
      scalable: false,
      devices: [...this.#devices.values()].map((d) => ({ sid: d.sid, asid: d.asid, learnt: d.learnt })),
      domainTags: [...this.#asidsSeen].sort((a, b) => a - b),
      setupCommands: this.counters.setupCommands,
    };
  }
}
