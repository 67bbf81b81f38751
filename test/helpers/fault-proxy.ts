// A TCP proxy between a client and Redis that injects network faults for tests: latency, a link that
// hangs and later flushes, connections cut, connections refused. Bytes are forwarded strictly in order
// and never dropped while a connection lives, so the RESP stream never desynchronizes: only time, or
// the connection itself, is taken away.
import net from 'node:net'
import type { TapLike } from './redis.js'

export interface FaultProxy {
  host: string
  port: number
  /** Delays every chunk, both ways, by `ms` from its arrival (order kept). */
  latency (ms: number): void
  /** Forwards nothing (bytes queue up, in order) until `resume()`: a hung link or server. */
  pause (): void
  /** Flushes what queued up and forwards again. */
  resume (): void
  /** Destroys every current connection, both sides (a network partition or a proxy restart). */
  cut (): void
  /** While on, new connections are closed as soon as they are accepted. */
  refuse (on?: boolean): void
  /** Back to a plain pass-through (no latency, not paused, accepting); what was held goes out now. */
  reset (): void
  /** Client connections currently open through the proxy. */
  connections (): number
}

// What waits in one direction of a link: chunks, then (maybe) the end of the stream.
interface Chunk { at: number, data: Buffer | null }

/** One direction of a link: forwards chunks from `from` to `to` at their time, in order. */
class Lane {
  private readonly queue: Chunk[] = []
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly proxy: State, from: net.Socket, private readonly to: net.Socket) {
    from.on('data', (data: Buffer) => this.push(data))
    // the end of the stream travels behind the bytes before it
    from.on('close', () => this.push(null))
  }

  private push (data: Buffer | null): void {
    this.queue.push({ at: Date.now() + this.proxy.latency, data })
    this.pump()
  }

  pump (): void {
    if (this.timer !== undefined || this.proxy.paused) return
    const now = Date.now()
    while (this.queue.length > 0 && this.queue[0].at <= now) {
      const { data } = this.queue.shift() as Chunk
      if (data === null) {
        this.to.destroy()
        this.queue.length = 0
        return
      }
      if (!this.to.destroyed) this.to.write(data)
    }
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.pump()
      }, this.queue[0].at - now)
    }
  }

  /** Forwards what waits now, whatever latency it was given. */
  flush (): void {
    for (const chunk of this.queue) chunk.at = 0
    clearTimeout(this.timer)
    this.timer = undefined
    this.pump()
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.queue.length = 0
  }
}

interface State { latency: number, paused: boolean, refusing: boolean }

/** Starts a proxy on a free loopback port forwarding to `target`; closed when the test ends. */
export async function startFaultProxy (t: TapLike, target: { host: string, port: number }): Promise<FaultProxy> {
  const state: State = { latency: 0, paused: false, refusing: false }
  const links = new Set<{ client: net.Socket, upstream: net.Socket, lanes: Lane[] }>()

  const server = net.createServer((client) => {
    if (state.refusing) {
      client.destroy()
      return
    }
    const upstream = net.connect(target.port, target.host)
    const link = { client, upstream, lanes: [new Lane(state, client, upstream), new Lane(state, upstream, client)] }
    links.add(link)
    // errors (ECONNREFUSED with Redis down, ECONNRESET after a cut) end the link like a close
    client.on('error', () => {})
    upstream.on('error', () => {})
    let open = 2
    const closed = (): void => { if (--open === 0) links.delete(link) }
    client.on('close', closed)
    upstream.on('close', closed)
  })
  server.on('error', () => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port

  const cut = (): void => {
    for (const { client, upstream, lanes } of links) {
      for (const lane of lanes) lane.stop()
      client.destroy()
      upstream.destroy()
    }
    links.clear()
  }
  const each = (fn: (lane: Lane) => void): void => {
    for (const { lanes } of links) lanes.forEach(fn)
  }

  t.teardown(async () => {
    cut()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  return {
    host: '127.0.0.1',
    port,
    latency (ms) { state.latency = ms },
    pause () { state.paused = true },
    resume () {
      state.paused = false
      each((lane) => lane.pump())
    },
    cut,
    refuse (on = true) { state.refusing = on },
    reset () {
      state.latency = 0
      state.refusing = false
      state.paused = false
      each((lane) => lane.flush())
    },
    connections: () => [...links].filter((link) => !link.client.destroyed).length
  }
}
