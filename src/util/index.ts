/** Cross-layer utilities: errors and the fault-injection point. */
export { IommufdError, type Errno } from './errors.js';
export { FaultInjector } from './fail-nth.js';
