/** The vendor-agnostic op format. */
export { Op, OpList, OP_WORDS, opAddr } from './format.js';
