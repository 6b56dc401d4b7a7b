import { describe, expect, it } from 'vitest';
import { ControlMessageError, encodeControl, MessageType, parseControl } from '../../ts/protocol/control.js';

describe('control message bodies', () => {
  it('AssignedIps round-trips', () => {
    const body = { resource: 'web', domain: 'app.corp.example', proxy_ips: ['100.96.0.1'], seq: 3 };
    const text = encodeControl({ type: MessageType.AssignedIps, body });
    expect(parseControl(MessageType.AssignedIps, text)).toEqual({ type: 0, body });
  });

  it('an unknown status reads as inactive, and a reason is kept', () => {
    const m = parseControl(1, '{"resource":"web","domain":"a.b","status":"degraded","seq":1,"reason":"x"}');
    expect(m?.body).toMatchObject({ status: 'inactive', reason: 'x' });
  });

  it('unknown types are ignored, not errors', () => {
    expect(parseControl(9, 'not even json')).toBeUndefined();
  });

  it.each([
    ['not json', 'not JSON'],
    ['[1]', 'not a JSON object'],
    ['{"resource":"web","domain":"a","proxy_ips":"x","seq":1}', 'proxy_ips'],
    ['{"resource":"","domain":"a","proxy_ips":[],"seq":1}', 'resource'],
    ['{"resource":"web","domain":"a","proxy_ips":[],"seq":-1}', 'seq'],
    ['{"resource":"web","domain":"a","proxy_ips":[],"seq":1.5}', 'seq'],
  ])('rejects %s naming %s', (text, field) => {
    expect(() => parseControl(MessageType.AssignedIps, text)).toThrow(ControlMessageError);
    expect(() => parseControl(MessageType.AssignedIps, text)).toThrow(field);
  });

  it('refuses bodies over 1,200 bytes both ways', () => {
    const big = { resource: 'r', domain: 'x'.repeat(1300), proxy_ips: [], seq: 1 };
    expect(() => encodeControl({ type: 0, body: big })).toThrow(/exceeds 1200/);
    expect(() => parseControl(0, JSON.stringify(big))).toThrow(/exceeds 1200/);
  });
});
