import { once } from 'node:events'
import type { ChildProcess } from 'node:child_process'
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
  /** Starts the server again on the same port; also after a SIGKILL (kill() or process.kill), and a running one restarts. */
  start (): Promise<void>
  /** Kills the server (SIGKILL: no shutdown, connections reset) and waits until it is gone. */
  kill (): Promise<void>
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
  const child = (): ChildProcess | undefined => {
    const info = server.getInstanceInfo()
    return info === false ? undefined : info.childProcess
  }
  // The library still counts a server killed behind its back as running (its start() would throw):
  // stop() makes it forget it (for a dead process it only waits for the exit to be reaped).
  const forget = async (): Promise<void> => {
    if (child() !== undefined) await server.stop()
  }
  t.teardown(async () => {
    for (const c of clients) c.disconnect()
    const c = child()
    if (c?.pid !== undefined && c.exitCode === null && c.signalCode === null) process.kill(c.pid, 'SIGCONT') // a test that failed while it was stopped
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
    async start () {
      await forget()
      await server.start()
    },
    async kill () {
      const c = child()
      if (c?.pid === undefined) throw new Error('redis-server is not running')
      const exited = once(c, 'exit')
      process.kill(c.pid, 'SIGKILL')
      await exited
      await forget()
    },
    pid () { return child()?.pid }
  }
}
