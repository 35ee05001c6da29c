/**
 * The QEMU 7.2 trace events a replay knows (traces/README.md "Line format of the events that
 * matter", and QEMU's hw/i386/trace-events and hw/arm/trace-events for the ones the shipped
 * traces do not contain), with the format of their arguments and what a replay does with them.
 *
 * Argument formats, matched byte by byte after the event name and one space:
 * - `%x` a `0x`-prefixed hexadecimal number of up to 64 bits (kept exact as two 32-bit halves);
 * - `%h` bare hexadecimal digits (the `BB:DD.F` of a PCI address);
 * - `%d` a decimal number, optionally negative;
 * - `%s` a token of non-blank bytes;
 * - `%*` the rest of the line, whatever it holds.
 * Anything else must match literally; trailing blanks are allowed.
 */

/** Event ids (indexes of {@link EVENT_SPECS}; "keep sorted" by name within each vendor). */
export const Ev = {
  GuestConsole: 0,
  VirtioBlkHandleRead: 1,
  VirtioBlkHandleWrite: 2,
  // Intel VT-d.
  VtdAsUnmapWhole: 3,
  VtdCeNotPresent: 4,
  VtdContextCacheReset: 5,
  VtdDmarEnable: 6,
  VtdDmarFault: 7,
  VtdDmarTranslate: 8,
  VtdFaultDisabled: 9,
  VtdFrrNew: 10,
  VtdFstsClearIp: 11,
  VtdFstsPpf: 12,
  VtdInvDesc: 13,
  VtdInvDescCcDevice: 14,
  VtdInvDescCcDevices: 15,
  VtdInvDescCcDomain: 16,
  VtdInvDescCcGlobal: 17,
  VtdInvDescCcInvalid: 18,
  VtdInvDescIec: 19,
  VtdInvDescInvalid: 20,
  VtdInvDescIotlbDomain: 21,
  VtdInvDescIotlbGlobal: 22,
  VtdInvDescIotlbInvalid: 23,
  VtdInvDescIotlbPages: 24,
  VtdInvDescWaitInvalid: 25,
  VtdInvDescWaitIrq: 26,
  VtdInvDescWaitSw: 27,
  VtdInvDescWaitWriteFail: 28,
  VtdInvQiEnable: 29,
  VtdInvQiFetch: 30,
  VtdInvQiHead: 31,
  VtdInvQiSetup: 32,
  VtdInvQiTail: 33,
  VtdIotlbReset: 34,
  VtdIrEnable: 35,
  VtdReNotPresent: 36,
  VtdRegDmarRoot: 37,
  VtdRegIcsClearIp: 38,
  VtdRegIrRoot: 39,
  VtdRegWriteFectl: 40,
  VtdRegWriteGcmd: 41,
  VtdRegWriteIectl: 42,
  VtdSwitchAddressSpace: 43,
  VtdWarnInvalidQiTail: 44,
  VtdWarnIrTrigger: 45,
  // Arm SMMUv3.
  SmmuIotlbInvAll: 46,
  SmmuIotlbInvAsid: 47,
  SmmuIotlbInvIova: 48,
  Smmuv3CmdqCfgiCd: 49,
  Smmuv3CmdqCfgiSte: 50,
  Smmuv3CmdqCfgiSteRange: 51,
  Smmuv3CmdqConsume: 52,
  Smmuv3CmdqConsumeError: 53,
  Smmuv3CmdqConsumeOut: 54,
  Smmuv3CmdqOpcode: 55,
  Smmuv3CmdqTlbiNh: 56,
  Smmuv3CmdqTlbiNhAsid: 57,
  Smmuv3ConfigCacheInv: 58,
  Smmuv3DecodeCd: 59,
  Smmuv3DecodeCdTt: 60,
  Smmuv3InvNotifiersIova: 61,
  Smmuv3RecordEvent: 62,
  Smmuv3S1RangeInval: 63,
  Smmuv3TranslateAbort: 64,
  Smmuv3TranslateSuccess: 65,
  Smmuv3UnhandledCmd: 66,
  Smmuv3WriteGerror: 67,
  Smmuv3WriteGerrorn: 68,
  Smmuv3WriteMmio: 69,
} as const;

/** An event id. */
export type EventId = (typeof Ev)[keyof typeof Ev];

/** Which unit's trace an event belongs to ('any' for the device and console events). */
export type EventVendor = 'any' | 'vtd' | 'smmuv3';

/** One event: its name in the trace, its vendor, and the format of its arguments. */
export interface EventSpec {
  readonly ev: EventId;
  readonly name: string;
  readonly vendor: EventVendor;
  readonly format: string;
}

function e(ev: EventId, name: string, format: string): EventSpec {
  const vendor: EventVendor = name.startsWith('vtd_') ? 'vtd' : name.startsWith('smmu') ? 'smmuv3' : 'any';
  return { ev, name, vendor, format };
}

/** Every event, indexed by id. */
export const EVENT_SPECS: readonly EventSpec[] = [
  e(Ev.GuestConsole, 'guest_console', '%*'),
  e(Ev.VirtioBlkHandleRead, 'virtio_blk_handle_read', 'vdev %x req %x sector %d nsectors %d'),
  e(Ev.VirtioBlkHandleWrite, 'virtio_blk_handle_write', 'vdev %x req %x sector %d nsectors %d'),
  e(Ev.VtdAsUnmapWhole, 'vtd_as_unmap_whole', '%*'),
  e(Ev.VtdCeNotPresent, 'vtd_ce_not_present', '%*'),
  e(Ev.VtdContextCacheReset, 'vtd_context_cache_reset', ''),
  e(Ev.VtdDmarEnable, 'vtd_dmar_enable', 'enable %d'),
  e(Ev.VtdDmarFault, 'vtd_dmar_fault', '%*'),
  e(Ev.VtdDmarTranslate, 'vtd_dmar_translate', 'dev %h:%h.%h iova %x -> gpa %x mask %x'),
  e(Ev.VtdFaultDisabled, 'vtd_fault_disabled', '%*'),
  e(Ev.VtdFrrNew, 'vtd_frr_new', '%*'),
  e(Ev.VtdFstsClearIp, 'vtd_fsts_clear_ip', '%*'),
  e(Ev.VtdFstsPpf, 'vtd_fsts_ppf', '%*'),
  e(Ev.VtdInvDesc, 'vtd_inv_desc', 'invalidate desc type %s high %x low %x'),
  e(Ev.VtdInvDescCcDevice, 'vtd_inv_desc_cc_device', 'context invalidate device %h:%h.%h'),
  e(Ev.VtdInvDescCcDevices, 'vtd_inv_desc_cc_devices', 'context invalidate devices sid %x fmask %x'),
  e(Ev.VtdInvDescCcDomain, 'vtd_inv_desc_cc_domain', 'context invalidate domain %x'),
  e(Ev.VtdInvDescCcGlobal, 'vtd_inv_desc_cc_global', 'context invalidate globally'),
  e(Ev.VtdInvDescCcInvalid, 'vtd_inv_desc_cc_invalid', '%*'),
  e(Ev.VtdInvDescIec, 'vtd_inv_desc_iec', 'granularity %x index %x mask %x'),
  e(Ev.VtdInvDescInvalid, 'vtd_inv_desc_invalid', '%*'),
  e(Ev.VtdInvDescIotlbDomain, 'vtd_inv_desc_iotlb_domain', 'iotlb invalidate whole domain %x'),
  e(Ev.VtdInvDescIotlbGlobal, 'vtd_inv_desc_iotlb_global', 'iotlb invalidate global'),
  e(Ev.VtdInvDescIotlbInvalid, 'vtd_inv_desc_iotlb_invalid', '%*'),
  e(Ev.VtdInvDescIotlbPages, 'vtd_inv_desc_iotlb_pages', 'iotlb invalidate domain %x addr %x mask %x'),
  e(Ev.VtdInvDescWaitInvalid, 'vtd_inv_desc_wait_invalid', '%*'),
  e(Ev.VtdInvDescWaitIrq, 'vtd_inv_desc_wait_irq', '%*'),
  e(Ev.VtdInvDescWaitSw, 'vtd_inv_desc_wait_sw', 'wait invalidate status write addr %x data %x'),
  e(Ev.VtdInvDescWaitWriteFail, 'vtd_inv_desc_wait_write_fail', '%*'),
  e(Ev.VtdInvQiEnable, 'vtd_inv_qi_enable', 'enabled %d'),
  e(Ev.VtdInvQiFetch, 'vtd_inv_qi_fetch', ''),
  e(Ev.VtdInvQiHead, 'vtd_inv_qi_head', 'read head %d'),
  e(Ev.VtdInvQiSetup, 'vtd_inv_qi_setup', 'addr %x size %d'),
  e(Ev.VtdInvQiTail, 'vtd_inv_qi_tail', 'write tail %d'),
  e(Ev.VtdIotlbReset, 'vtd_iotlb_reset', 'IOTLB reset (reason: %*'),
  e(Ev.VtdIrEnable, 'vtd_ir_enable', 'enable %d'),
  e(Ev.VtdReNotPresent, 'vtd_re_not_present', '%*'),
  e(Ev.VtdRegDmarRoot, 'vtd_reg_dmar_root', 'addr %x scalable %d'),
  e(Ev.VtdRegIcsClearIp, 'vtd_reg_ics_clear_ip', '%*'),
  e(Ev.VtdRegIrRoot, 'vtd_reg_ir_root', 'addr %x size %x'),
  e(Ev.VtdRegWriteFectl, 'vtd_reg_write_fectl', 'value %x'),
  e(Ev.VtdRegWriteGcmd, 'vtd_reg_write_gcmd', 'status %x value %x'),
  e(Ev.VtdRegWriteIectl, 'vtd_reg_write_iectl', 'value %x'),
  e(Ev.VtdSwitchAddressSpace, 'vtd_switch_address_space', 'Device %h:%h.%h switching address space (iommu enabled=%d)'),
  e(Ev.VtdWarnInvalidQiTail, 'vtd_warn_invalid_qi_tail', '%*'),
  e(Ev.VtdWarnIrTrigger, 'vtd_warn_ir_trigger', '%*'),
  e(Ev.SmmuIotlbInvAll, 'smmu_iotlb_inv_all', 'IOTLB invalidate all'),
  e(Ev.SmmuIotlbInvAsid, 'smmu_iotlb_inv_asid', 'IOTLB invalidate asid=%d'),
  e(Ev.SmmuIotlbInvIova, 'smmu_iotlb_inv_iova', 'IOTLB invalidate asid=%d addr=%x'),
  e(Ev.Smmuv3CmdqCfgiCd, 'smmuv3_cmdq_cfgi_cd', 'sid=%x'),
  e(Ev.Smmuv3CmdqCfgiSte, 'smmuv3_cmdq_cfgi_ste', 'streamid= %x'),
  e(Ev.Smmuv3CmdqCfgiSteRange, 'smmuv3_cmdq_cfgi_ste_range', 'start=%x - end=%x'),
  e(Ev.Smmuv3CmdqConsume, 'smmuv3_cmdq_consume', 'prod=%d cons=%d prod.wrap=%d cons.wrap=%d'),
  e(Ev.Smmuv3CmdqConsumeError, 'smmuv3_cmdq_consume_error', 'Error on %s command execution: %d'),
  e(Ev.Smmuv3CmdqConsumeOut, 'smmuv3_cmdq_consume_out', 'prod:%d, cons:%d, prod_wrap:%d, cons_wrap:%d'),
  e(Ev.Smmuv3CmdqOpcode, 'smmuv3_cmdq_opcode', '<--- %s'),
  e(Ev.Smmuv3CmdqTlbiNh, 'smmuv3_cmdq_tlbi_nh', ''),
  e(Ev.Smmuv3CmdqTlbiNhAsid, 'smmuv3_cmdq_tlbi_nh_asid', 'asid=%d'),
  e(Ev.Smmuv3ConfigCacheInv, 'smmuv3_config_cache_inv', 'Config cache INV for sid=%x'),
  e(Ev.Smmuv3DecodeCd, 'smmuv3_decode_cd', 'oas=%d'),
  e(Ev.Smmuv3DecodeCdTt, 'smmuv3_decode_cd_tt', 'TT[%d]:tsz:%d ttb:%x granule_sz:%d had:%d'),
  e(Ev.Smmuv3InvNotifiersIova, 'smmuv3_inv_notifiers_iova', '%*'),
  e(Ev.Smmuv3RecordEvent, 'smmuv3_record_event', '%*'),
  e(Ev.Smmuv3S1RangeInval, 'smmuv3_s1_range_inval', 'vmid=%d asid=%d addr=%x tg=%d num_pages=%x ttl=%d leaf=%d'),
  e(Ev.Smmuv3TranslateAbort, 'smmuv3_translate_abort', '%*'),
  e(Ev.Smmuv3TranslateSuccess, 'smmuv3_translate_success', '%s sid=%x iova=%x translated=%x perm=%x'),
  e(Ev.Smmuv3UnhandledCmd, 'smmuv3_unhandled_cmd', 'Unhandled command type=%d'),
  e(Ev.Smmuv3WriteGerror, 'smmuv3_write_gerror', '%*'),
  e(Ev.Smmuv3WriteGerrorn, 'smmuv3_write_gerrorn', '%*'),
  e(Ev.Smmuv3WriteMmio, 'smmuv3_write_mmio', 'addr: %x val:%x size: %x(%d)'),
];
