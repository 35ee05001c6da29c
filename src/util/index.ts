/** Cross-layer utilities: errors and the fault-injection point. */
export { IommufdError, iommufdError, isIommufdError, type Errno } from './errors.js';
export { FaultInjector } from './fail-nth.js';
