// The address plan (docs/architecture.md#address-plan): proxy ranges, tunnel ranges, the sentinels. Defined
// once, in the core crate's constants, and read here from the addon, so TypeScript and Rust can never hold
// two plans.
import native from '../native.js';

export const ADDRESS_PLAN = Object.freeze(native.addressPlan());
