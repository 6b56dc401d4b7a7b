// Public library entry point: `import { … } from 'dnsnat'`.

export { type Gateway, type GatewayOptions, type ReloadResult, startGateway } from './gateway/gateway.js';
export {
  GatewayResolver,
  hasAddresses,
  isBusy,
  RESOLVER_BUSY,
  type Resolution,
  type ResolutionOutcome,
  ResolverError,
  type ResolverErrorCode,
  type ResolverOptions,
  type ResolverStats,
} from './gateway/resolver.js';
export { generateKeyPair, type KeyPair, publicKeyOf } from './keys.js';
export type { BuildInfo, RuntimeInfo } from './native.js';
export { formatVersion, packageVersion, type VersionReport, versionReport } from './version.js';

import native from './native.js';

/** Where an async native call ran: resolves on the addon's tokio runtime. */
export function runtimeInfo(sleepMs?: number) {
  return native.runtimeInfo(sleepMs);
}
export {
  type ClientStartOptions,
  type ClientStatus,
  type RunningClient,
  startClient,
} from './client/client.js';
export { type ClientConfig, loadClientConfig, parseClientConfig } from './client/config.js';
export { ConfigError } from './config/fields.js';
