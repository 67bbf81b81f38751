'use strict'

// One benchmarked server, run by test/bench/run.js in its own process (pinned to its own core).
//   node test/bench/server.js <bare|object|slow|memory|redis> [redis-url]
// Prints one JSON line {"port": n} on stdout once listening; exits when stdin closes (the parent
// went away) or on SIGTERM/SIGINT.

const { setTimeout: sleep } = require('node:timers/promises')
const Fastify = require('fastify')
const { body, text } = require('./body.js')

const SLOW_MS = 5
const KINDS = ['bare', 'object', 'slow', 'memory', 'redis']

async function main () {
  const [kind, redisUrl] = process.argv.slice(2)
  if (!KINDS.includes(kind)) throw new Error(`test/bench/server.js: unknown kind ${JSON.stringify(kind)} (expected ${KINDS.join(', ')})`)
  if (kind === 'redis' && redisUrl === undefined) throw new Error('test/bench/server.js: the redis kind needs a redis:// URL')

  // warnings (e.g. from the plugin) go to stderr: stdout carries the port line
  const app = Fastify({ logger: { level: 'warn', stream: process.stderr } })
  let runs = 0

  if (kind === 'memory' || kind === 'redis') {
    let httpCache
    try {
      httpCache = require('../../dist/index.js')
    } catch (err) {
      throw new Error(`test/bench/server.js: cannot load the compiled plugin (run \`npm run build\` first): ${err.message}`)
    }
    await app.register(httpCache, kind === 'redis' ? { redis: redisUrl } : {})
  }

  // Handler runs, so the parent can tell that every measured response of a cached server was a HIT.
  app.get('/stats', async () => ({ runs }))

  if (kind === 'bare') {
    // the same bytes a HIT sends, already serialized: the ceiling for any cache HIT
    app.get('/', async (request, reply) => {
      runs++
      reply.type('application/json; charset=utf-8')
      return text
    })
  } else if (kind === 'object') {
    // the usual handler: an object that Fastify serializes (JSON.stringify) on every request
    app.get('/', async () => {
      runs++
      return body
    })
  } else {
    // ttl long enough that the entry cannot expire during a run: every measured request is a HIT
    const config = kind === 'slow' ? {} : { cache: { ttl: 3600 } }
    app.get('/', { config }, async () => {
      runs++
      await sleep(SLOW_MS)
      return body
    })
  }

  let closing = false
  const close = () => {
    if (closing) return
    closing = true
    const force = setTimeout(() => process.exit(0), 2000)
    force.unref()
    app.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.on('SIGTERM', close)
  process.on('SIGINT', close)
  process.stdin.on('end', close)
  process.stdin.on('error', close)
  process.stdin.resume()

  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  process.stdout.write(JSON.stringify({ port: address.port }) + '\n')
}

main().catch((err) => {
  // our own errors say what to do; anything else gets its stack
  process.stderr.write(`${err.message?.startsWith('test/bench/server.js') === true ? err.message : err.stack ?? err}\n`)
  process.exit(1)
})
