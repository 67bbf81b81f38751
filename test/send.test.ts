import t from 'tap'
import { connect } from 'node:http2'
import Fastify from 'fastify'
import httpCache from '../index.js'
import { backends, build } from './helpers/app.js'
import { until } from './helpers/until.js'

// How a HIT is written: straight to the response when no other onSend hook would see it, else through
// Fastify's send path. Either way the client, onResponse hooks and the request log see the same answer.

// For a route-level onRequest hook (it runs before the cache's): counts the replies taken over.
function countTakeovers (): { hook: (request: unknown, reply: { hijack: () => unknown }, done: () => void) => void, count: () => number } {
  let n = 0
  return {
    hook (request, reply, done) {
      const hijack = reply.hijack
      reply.hijack = function (this: unknown) {
        n++
        return hijack.call(this)
      }
      done()
    },
    count: () => n
  }
}

for (const backend of backends(t)) {
  t.test(backend.name, async (t) => {
    t.test('a MISS answered with a string: the client, a concurrent follower and the HITs after get its exact bytes (multi-byte UTF-8)', async (t) => {
      const app = await build(t, backend)
      const text = JSON.stringify({ name: 'Zoë — 東京 🍣', items: Array.from({ length: 40 }, (_, i) => `élément ${i}`) })
      let calls = 0
      let release = (): void => {}
      const gate = new Promise<void>((resolve) => { release = resolve })
      app.get('/utf8', { config: { cache: { ttl: 30 } } }, async (request, reply) => {
        calls++
        await gate
        reply.type('application/json; charset=utf-8')
        return text
      })
      // an onSend hook on another route leaves this one alone: its MISS is sent as the entry's bytes
      app.get('/other', { onSend: async (request, reply, payload) => payload }, async () => 'x')
      const base = await app.listen({ port: 0, host: '127.0.0.1' })
      const leader = fetch(`${base}/utf8`)
      // the leader's handler runs before the follower is sent (a fixed wait let a slow first fetch lose the race)
      await until('the leader\'s handler ran', async () => calls === 1)
      const follower = fetch(`${base}/utf8`)
      await new Promise((resolve) => setTimeout(resolve, 50))
      release()
      const [miss, followed] = await Promise.all([leader, follower])
      t.equal(miss.headers.get('x-cache'), 'MISS')
      t.equal(await miss.text(), text, 'the MISS body')
      t.equal(Number(miss.headers.get('content-length')), Buffer.byteLength(text), 'the MISS Content-Length counts bytes')
      t.equal(await followed.text(), text, 'the follower, served from the leader\'s entry')
      t.equal(followed.headers.get('etag'), miss.headers.get('etag'))
      const hit = await fetch(`${base}/utf8`)
      t.equal(hit.headers.get('x-cache'), 'HIT')
      t.equal(await hit.text(), text, 'the HIT body')
      t.equal(hit.headers.get('etag'), miss.headers.get('etag'))
      t.equal(calls, 1, 'the handler ran once')
    })

    t.test('a HIT written directly carries the same status, headers and body, over a real socket', async (t) => {
      const lines: Array<Record<string, unknown>> = []
      const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
      await app.register(httpCache, await backend.options(t))
      t.teardown(() => app.close())
      const seen: Array<{ status: number, cache: unknown }> = []
      app.addHook('onResponse', async (request, reply) => { seen.push({ status: reply.statusCode, cache: reply.getHeader('x-cache') }) })
      const takeovers = countTakeovers()
      let calls = 0
      app.get('/item', { onRequest: takeovers.hook, config: { cache: { ttl: 30 } } }, async (request, reply) => {
        reply.header('x-kept', 'yes')
        return { calls: ++calls }
      })
      const base = await app.listen({ port: 0, host: '127.0.0.1' })

      const miss = await fetch(`${base}/item`)
      const missBody = await miss.text()
      t.equal(miss.headers.get('x-cache'), 'MISS')
      const hit = await fetch(`${base}/item`)
      t.equal(hit.status, 200)
      t.equal(await hit.text(), missBody)
      t.equal(hit.headers.get('x-cache'), 'HIT')
      for (const name of ['content-type', 'content-length', 'etag', 'x-kept']) t.equal(hit.headers.get(name), miss.headers.get(name), name)
      t.match(hit.headers.get('cache-control'), /^max-age=(29|30)$/)
      t.equal(hit.headers.get('age'), '0')
      t.equal(calls, 1)
      t.equal(takeovers.count(), 1, 'the HIT was written directly')

      // a conditional HIT: 304 without a body or its length
      const etag = hit.headers.get('etag') ?? ''
      const not = await fetch(`${base}/item`, { headers: { 'if-none-match': etag, 'cache-control': 'max-age=60' } })
      t.equal(not.status, 304)
      t.equal(await not.text(), '')
      t.equal(not.headers.get('etag'), etag)
      t.equal(not.headers.get('content-length'), null)
      t.equal(takeovers.count(), 2)

      t.same(seen, [{ status: 200, cache: 'MISS' }, { status: 200, cache: 'HIT' }, { status: 304, cache: 'HIT' }], 'onResponse hooks ran for every answer')
      t.same(lines.filter((l) => l.msg === 'request completed').map((l) => (l.res as { statusCode: number }).statusCode), [200, 200, 304], 'the request log too')
    })

    t.test('other onSend hooks (the app\'s or the route\'s) still see every HIT', async (t) => {
      const app = await build(t, backend)
      const takeovers = countTakeovers()
      app.addHook('onSend', async (request, reply, payload) => {
        reply.header('x-app-hook', 'ran')
        return payload
      })
      app.get('/a', { onRequest: takeovers.hook, config: { cache: { ttl: 30 } } }, async () => 'a')
      app.get('/b', {
        onRequest: takeovers.hook,
        onSend: async (request, reply, payload) => { reply.header('x-route-hook', 'ran'); return payload },
        config: { cache: { ttl: 30 } }
      }, async () => 'b')
      for (const url of ['/a', '/b']) {
        await app.inject(url)
        const hit = await app.inject(url)
        t.equal(hit.headers['x-cache'], 'HIT', url)
        t.equal(hit.headers['x-app-hook'], 'ran', url)
        t.equal(hit.body, url.slice(1))
      }
      t.equal((await app.inject('/b')).headers['x-route-hook'], 'ran')
      t.equal(takeovers.count(), 0, 'no HIT was written around them')
    })

    t.test('a header Node refuses, set by another hook, gets Fastify\'s error answer, not a hang', async (t) => {
      const app = await build(t, backend)
      app.get('/bad', {
        onRequest: (request, reply, done) => {
          if (request.headers['x-break'] !== undefined) reply.header('x-broken', 'a\nb')
          done()
        },
        config: { cache: { ttl: 30 } }
      }, async () => 'ok')
      t.equal((await app.inject('/bad')).headers['x-cache'], 'MISS')
      const broken = await app.inject({ url: '/bad', headers: { 'x-break': '1' } })
      t.equal(broken.statusCode, 500)
      t.equal(broken.json().code, 'ERR_INVALID_CHAR')
      const hit = await app.inject('/bad')
      t.equal(hit.headers['x-cache'], 'HIT')
      t.equal(hit.body, 'ok')
    })
  })
}

t.test('HTTP/2 HITs go through Fastify\'s send path', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(httpCache)
  t.teardown(() => app.close())
  const takeovers = countTakeovers()
  let calls = 0
  app.get('/h2', { onRequest: takeovers.hook, config: { cache: { ttl: 30 } } }, async () => ({ calls: ++calls }))
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const session = connect(base)
  t.teardown(() => session.close())
  const get = async (): Promise<{ headers: Record<string, unknown>, body: string }> => await new Promise((resolve, reject) => {
    const req = session.request({ ':path': '/h2' })
    let body = ''
    let headers: Record<string, unknown> = {}
    req.setEncoding('utf8')
    req.on('response', (h) => { headers = h })
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => resolve({ headers, body }))
    req.on('error', reject)
    req.end()
  })
  const miss = await get()
  const hit = await get()
  t.equal(miss.headers['x-cache'], 'MISS')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(hit.headers[':status'], 200)
  t.equal(hit.body, '{"calls":1}')
  t.equal(hit.headers['content-length'], String(hit.body.length))
  t.equal(calls, 1)
  t.equal(takeovers.count(), 0)
})
