import type { Socket } from 'node:dgram';
import { promises as dns } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answer, serveSiteDns } from '../../ts/demo/site-dns.js';

describe("the demo site's DNS server", () => {
  let server: Socket;
  const resolver = new dns.Resolver({ timeout: 2000, tries: 1 });

  beforeAll(async () => {
    server = await serveSiteDns('127.0.0.1', 0, {
      'app.corp.example': ['198.18.2.2', '2001:db8:2::2'],
      'empty.corp.example': [],
    });
    resolver.setServers([`127.0.0.1:${server.address().port}`]);
  });
  afterAll(() => server.close());

  it('answers A and AAAA from its table', async () => {
    expect(await resolver.resolve4('App.Corp.Example')).toEqual(['198.18.2.2']);
    expect(await resolver.resolve6('app.corp.example')).toEqual(['2001:db8:2::2']);
  });

  it('answers NXDOMAIN for unknown names and NODATA for names without records', async () => {
    await expect(resolver.resolve4('nope.corp.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(resolver.resolve4('empty.corp.example')).rejects.toMatchObject({ code: 'ENODATA' });
  });

  it('ignores what it cannot read instead of throwing', () => {
    expect(answer(Buffer.from([1, 2, 3]), {}, 60)).toBeUndefined();
    expect(answer(Buffer.alloc(12, 0), {}, 60)).toBeUndefined();
  });
});
