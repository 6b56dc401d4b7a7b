// The control messages of docs/architecture.md#control-protocol, as JSON bodies. The Rust side frames
// them (type byte, version, ≤ 1,200-byte body); this module gives each body
// its shape, on both sides of the tunnel, so client and gateway can never
// disagree about a field name.
//
// Validation is strict in what it accepts (a body that fails it is dropped and
// counted by the caller) and lenient where the design says so: an unknown
// `status` reads as `inactive`, so a newer gateway's statuses never leave a
// client waiting for something it cannot understand.

export const MessageType = { AssignedIps: 0, DomainStatus: 1, Goodbye: 2 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Largest body the framing carries. */
export const MAX_BODY_BYTES = 1200;

export interface AssignedIps {
  resource: string;
  domain: string;
  proxy_ips: string[];
  seq: number;
}

/**
 * An `AssignedIps` as received: `proxy_ips` is whatever list the peer sent, checked by the gateway against its
 * ranges and the resource's stack, so that a wrong one is answered with a precise reason.
 */
export interface ReceivedAssignedIps {
  resource: string;
  domain: string;
  proxy_ips: unknown;
  seq: number;
}

export interface DomainStatus {
  resource: string;
  domain: string;
  status: 'active' | 'inactive';
  seq: number;
  reason?: string;
}

export type ControlMessage =
  | { type: typeof MessageType.AssignedIps; body: AssignedIps }
  | { type: typeof MessageType.DomainStatus; body: DomainStatus }
  | { type: typeof MessageType.Goodbye; body: Record<string, never> };

export class ControlMessageError extends Error {
  override readonly name = 'ControlMessageError';
}

function object(text: string): Record<string, unknown> {
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) {
    throw new ControlMessageError(`body of ${Buffer.byteLength(text)} bytes exceeds ${MAX_BODY_BYTES}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ControlMessageError('body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ControlMessageError('body is not a JSON object');
  }
  return value as Record<string, unknown>;
}

function str(o: Record<string, unknown>, field: string): string {
  const v = o[field];
  if (typeof v !== 'string' || v.length === 0 || v.length > 255) {
    throw new ControlMessageError(`${field}: expected a non-empty string`);
  }
  return v;
}

function seq(o: Record<string, unknown>): number {
  const v = o.seq;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new ControlMessageError('seq: expected a non-negative integer');
  }
  return v;
}

/**
 * Reads a control message. Unknown types return `undefined` (ignored, per
 * the design); malformed bodies throw `ControlMessageError`.
 */
export function parseControl(type: number, text: string): ControlMessage | undefined {
  switch (type) {
    case MessageType.AssignedIps: {
      const body = parseReceivedAssignedIps(text);
      const ips = body.proxy_ips;
      if (!Array.isArray(ips) || ips.length > 16 || !ips.every((ip) => typeof ip === 'string')) {
        throw new ControlMessageError('proxy_ips: expected an array of at most 16 strings');
      }
      return { type, body: { ...body, proxy_ips: ips as string[] } };
    }
    case MessageType.DomainStatus: {
      const o = object(text);
      const body: DomainStatus = {
        resource: str(o, 'resource'),
        domain: str(o, 'domain'),
        status: o.status === 'active' ? 'active' : 'inactive',
        seq: seq(o),
      };
      if (typeof o.reason === 'string') body.reason = o.reason.slice(0, 200);
      return { type, body };
    }
    case MessageType.Goodbye:
      object(text);
      return { type, body: {} };
    default:
      return undefined;
  }
}

/**
 * Reads an `AssignedIps` body the way a gateway receives it: `resource`, `domain` and `seq` strictly, `proxy_ips`
 * as sent (the gateway checks it against its ranges, answering a precise reason); throws `ControlMessageError`.
 */
export function parseReceivedAssignedIps(text: string): ReceivedAssignedIps {
  const o = object(text);
  return { resource: str(o, 'resource'), domain: str(o, 'domain'), proxy_ips: o.proxy_ips, seq: seq(o) };
}

/** The JSON body of a message, checked against the framing's size limit. */
export function encodeControl(message: ControlMessage): string {
  const text = JSON.stringify(message.body);
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) {
    throw new ControlMessageError(`body of ${Buffer.byteLength(text)} bytes exceeds ${MAX_BODY_BYTES}`);
  }
  return text;
}
