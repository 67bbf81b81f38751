import { RedisMemoryServer } from 'redis-memory-server'
import { Redis } from 'ioredis'

export interface TestRedis {
  host: string
  port: number
  url: string
  /** A fresh ioredis client; closed when the test ends. */
  client (options?: Record<string, unknown>): Redis
  /** Stops the server (graceful shutdown); `start` brings it back on the same port. */
  stop (): Promise<void>
  start (): Promise<void>
  /** The running redis-server process (for SIGKILL / SIGSTOP fault injection). */
  pid (): number | undefined
}

/** What the helpers need of a tap test: somewhere to register clean-up. */
export interface TapLike { teardown (fn: () => unknown): void }

/** Starts a throwaway redis-server (the Debian binary) on a free port for one test file. */
export async function startRedis (t: TapLike): Promise<TestRedis> {
  const server = await RedisMemoryServer.create({ binary: { systemBinary: process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server' } })
  const host = await server.getHost()
  const port = await server.getPort()
  const clients: Redis[] = []
  t.teardown(async () => {
    for (const c of clients) c.disconnect()
    await server.stop()
  })
  return {
    host,
    port,
    url: `redis://${host}:${port}`,
    client (options = {}) {
      const c = new Redis({ host, port, ...options })
      c.on('error', () => {}) // connection errors are expected in fault tests
      clients.push(c)
      return c
    },
    async stop () { await server.stop() },
    async start () { await server.start() },
    pid () {
      const info = server.getInstanceInfo()
      return info === false ? undefined : info.childProcess?.pid
    }
  }
}
