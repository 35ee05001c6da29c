/** The vendor-agnostic op format. */
export { Op, OpFlag, OpList, OP_WORDS, opAddr } from './format.js';
