import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import calculateSlot from 'cluster-key-slot'
import { Cluster, Redis, type ClusterOptions } from 'ioredis'
import type { TapLike } from './redis.js'

const HOST = '127.0.0.1'
const SLOTS = 16384

export interface ClusterNode {
  port: number
  /** The node's cluster id (40 hex characters). */
  id: string
  /** Role when the cluster was formed (a failover changes it; see masterOf / waitForPromotion). */
  role: 'master' | 'replica'
  pid: number
  /** Replicas: port of the master they were attached to. */
  master?: number
  /** Masters: the slot range they were given, first and last. */
  slots?: [number, number]
  /** False once kill() took it down. */
  alive: boolean
}

export interface TestCluster {
  host: string
  /** Every node as formed: masters first, then replicas. */
  nodes: ClusterNode[]
  /** How long startCluster took, processes to cluster_state:ok with every replica in sync. */
  startupMs: number
  /** A fresh ioredis Cluster over every node (default options unless given); disconnected on teardown. */
  client: (options?: ClusterOptions) => Cluster
  /** A plain connection to one node (to look at the keys it holds); disconnected on teardown. */
  node: (port: number) => Redis
  /** SIGKILLs one node (no shutdown, connections reset) and waits until the process is gone. */
  kill: (port: number) => Promise<void>
  /** The node serving `slot` now, as a surviving node's CLUSTER SLOTS says. */
  masterOf: (slot: number) => Promise<ClusterNode>
  /** Hash slot of a key (its {hash tag} when it has one). */
  slotOf: (key: string) => number
  /**
   * Waits until a replica of the killed master `port` serves its slots and every surviving node says
   * cluster_state:ok; resolves to that replica. Fails after `ms`.
   */
  waitForPromotion: (port: number, ms?: number) => Promise<ClusterNode>
}

export interface ClusterSpec { masters?: number, replicasPerMaster?: number, nodeTimeout?: number, startupTimeout?: number }

interface NodeView { id: string, port: number, flags: string[], master: string | undefined, connected: boolean, slots: string[] }

/**
 * Starts a throwaway Redis Cluster (the Debian redis-server binary) on free loopback ports for one test
 * file: masters get even slot ranges (as redis-cli --cluster create assigns them), replicas follow them.
 * Formed with cluster commands (ADDSLOTSRANGE, SET-CONFIG-EPOCH, MEET, REPLICATE), so redis-cli is not
 * needed. Every process and the data directory go on teardown, also when the test fails; a watchdog
 * removes them should this process die without running its teardown.
 */
export async function startCluster (t: TapLike, spec: ClusterSpec = {}): Promise<TestCluster> {
  const started = Date.now()
  const masters = spec.masters ?? 3
  const replicasPerMaster = spec.replicasPerMaster ?? 1
  const nodeTimeout = spec.nodeTimeout ?? 1000
  const deadline = started + (spec.startupTimeout ?? 20_000)
  const bin = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server'
  const dir = mkdtempSync(join(tmpdir(), 'http-cache-cluster-'))
  const procs = new Map<number, ChildProcess>()
  const admins = new Map<number, Redis>()
  const extra: Array<Redis | Cluster> = []
  const watchdogs: ChildProcess[] = []

  t.teardown(async () => {
    for (const c of [...extra, ...admins.values()]) c.disconnect()
    await Promise.all([...procs.values()].map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return
      const exited = once(p, 'exit')
      p.kill('SIGKILL')
      await exited
    }))
    for (const w of watchdogs) if (w.pid !== undefined) try { process.kill(w.pid, 'SIGKILL') } catch {}
    rmSync(dir, { recursive: true, force: true })
  })

  const args = (port: number): string[] => [
    '--port', String(port), '--bind', HOST,
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`),
    '--cluster-node-timeout', String(nodeTimeout), '--cluster-require-full-coverage', 'no',
    '--appendonly', 'no', '--save', '', '--dir', dir,
    // a replica syncs at once (Redis 7 waits 5 s for more replicas before a diskless sync by default)
    '--repl-diskless-sync-delay', '0',
    '--logfile', join(dir, `redis-${port}.log`)
  ]

  const used = new Set<number>()
  async function startNode (): Promise<number> {
    let last = ''
    for (let attempt = 0; attempt < 8; attempt++) {
      const port = await freePort(used)
      const proc = spawn(bin, args(port), { stdio: 'ignore' })
      const spawned: { error?: Error } = {}
      proc.on('error', (err) => { spawned.error = err })
      procs.set(port, proc)
      const until = Date.now() + 5000
      while (Date.now() < until && spawned.error === undefined && proc.exitCode === null && proc.signalCode === null) {
        if (await accepts(port)) return port
        await sleep(10)
      }
      if (spawned.error !== undefined) throw new Error(`cannot start ${bin}: ${spawned.error.message} (bash .ci/ensure-redis.sh installs it)`)
      // most likely a port taken between the check and the bind: try another one
      last = tail(join(dir, `redis-${port}.log`))
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      procs.delete(port)
    }
    throw new Error(`redis-server did not start in cluster mode: ${last}`)
  }

  const total = masters * (1 + replicasPerMaster)
  const ports = await Promise.all(Array.from({ length: total }, startNode))
  const watchdog = spawn('sh', ['-c', `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; kill -9 ${[...procs.values()].map((p) => p.pid).join(' ')} 2>/dev/null; rm -rf '${dir}'`],
    { detached: true, stdio: 'ignore' })
  watchdog.unref()
  watchdogs.push(watchdog)

  const admin = (port: number): Redis => {
    let c = admins.get(port)
    if (c === undefined) {
      c = new Redis({ host: HOST, port, maxRetriesPerRequest: 1, retryStrategy: () => null, enableOfflineQueue: true })
      c.on('error', () => {})
      admins.set(port, c)
    }
    return c
  }
  const call = async (port: number, ...command: [string, ...Array<string | number>]): Promise<any> => await admin(port).call(...command)

  // Slots, epochs (distinct ones: no collision to resolve), then one node meets all the others.
  const nodes: ClusterNode[] = []
  for (let i = 0; i < total; i++) {
    const port = ports[i]
    const id = String(await call(port, 'CLUSTER', 'MYID'))
    const node: ClusterNode = { port, id, role: i < masters ? 'master' : 'replica', pid: procs.get(port)?.pid ?? 0, alive: true }
    if (i < masters) {
      node.slots = slotRange(i, masters)
      await call(port, 'CLUSTER', 'ADDSLOTSRANGE', node.slots[0], node.slots[1])
    } else {
      node.master = ports[(i - masters) % masters]
    }
    await call(port, 'CLUSTER', 'SET-CONFIG-EPOCH', i + 1)
    nodes.push(node)
  }
  const byPort = new Map(nodes.map((n) => [n.port, n]))
  for (const n of nodes.slice(1)) await call(nodes[0].port, 'CLUSTER', 'MEET', HOST, n.port)

  const views = async (port: number): Promise<NodeView[]> => parseNodes(String(await call(port, 'CLUSTER', 'NODES')))
  const check = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
    while (!(await ok().catch(() => false))) {
      if (Date.now() > deadline) {
        throw new Error(`cluster not formed in ${deadline - started} ms: ${what}\n${await views(nodes[0].port).then((v) => JSON.stringify(v), String)}`)
      }
      await sleep(25)
    }
  }

  // A replica can follow its master once it knows the master's id.
  await check('every replica knows its master', async () => {
    for (const r of nodes.filter((n) => n.role === 'replica')) {
      const master = byPort.get(r.master as number) as ClusterNode
      if (!(await views(r.port)).some((v) => v.id === master.id && !v.flags.includes('handshake'))) return false
    }
    return true
  })
  for (const r of nodes.filter((n) => n.role === 'replica')) {
    await call(r.port, 'CLUSTER', 'REPLICATE', (byPort.get(r.master as number) as ClusterNode).id)
  }

  await check('cluster_state:ok everywhere, every node agreeing on every role, replicas in sync', async () => {
    for (const n of nodes) {
      const info = String(await call(n.port, 'CLUSTER', 'INFO'))
      if (!info.includes('cluster_state:ok') || !info.includes(`cluster_known_nodes:${total}`)) return false
      for (const expected of nodes) {
        const v = (await views(n.port)).find((x) => x.id === expected.id)
        if (v === undefined || v.flags.some((f) => f === 'handshake' || f === 'noaddr' || f.startsWith('fail'))) return false
        if (!v.flags.includes(expected.role === 'master' ? 'master' : 'slave')) return false
        if (expected.role === 'replica' && v.master !== byPort.get(expected.master as number)?.id) return false
        if (expected.id !== n.id && !v.connected) return false
      }
      if (n.role === 'replica' && !String(await call(n.port, 'INFO', 'replication')).includes('master_link_status:up')) return false
    }
    return true
  })

  const liveNode = (): ClusterNode => {
    const n = nodes.find((x) => x.alive)
    if (n === undefined) throw new Error('every node of the cluster is down')
    return n
  }

  const cluster: TestCluster = {
    host: HOST,
    nodes,
    startupMs: Date.now() - started,
    client (options = {}) {
      const c = new Cluster(nodes.map((n) => ({ host: HOST, port: n.port })), options)
      c.on('error', () => {}) // a node down is expected in failover tests
      extra.push(c)
      return c
    },
    node (port) {
      const c = new Redis({ host: HOST, port })
      c.on('error', () => {})
      extra.push(c)
      return c
    },
    async kill (port) {
      const p = procs.get(port)
      const n = byPort.get(port)
      if (p === undefined || n === undefined || !n.alive) throw new Error(`no live cluster node on port ${port}`)
      const exited = once(p, 'exit')
      p.kill('SIGKILL')
      await exited
      n.alive = false
      admins.get(port)?.disconnect()
      admins.delete(port)
    },
    async masterOf (slot) {
      const ranges = await call(liveNode().port, 'CLUSTER', 'SLOTS') as Array<[number, number, [string, number, string]]>
      const range = ranges.find(([first, last]) => first <= slot && slot <= last)
      const node = range === undefined ? undefined : byPort.get(Number(range[2][1]))
      if (node === undefined) throw new Error(`no node serves slot ${slot}`)
      return node
    },
    slotOf: (key) => calculateSlot(key),
    async waitForPromotion (port, ms = 15_000) {
      const killed = byPort.get(port)
      if (killed?.slots === undefined) throw new Error(`${port} was not a master`)
      const slots = `${killed.slots[0]}-${killed.slots[1]}`
      const candidates = nodes.filter((n) => n.master === port && n.alive)
      const until = Date.now() + ms
      for (;;) {
        const promoted = await (async () => {
          const live = nodes.filter((n) => n.alive)
          let winner: ClusterNode | undefined
          for (const n of live) {
            if (!String(await call(n.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return undefined
            const view = await views(n.port)
            const owner = view.find((v) => v.flags.includes('master') && v.slots.includes(slots))
            const candidate = candidates.find((c) => c.id === owner?.id)
            if (candidate === undefined || (winner !== undefined && winner !== candidate)) return undefined
            winner = candidate
          }
          return winner
        })().catch(() => undefined)
        if (promoted !== undefined) return promoted
        if (Date.now() > until) throw new Error(`no replica of ${port} took over slots ${slots} within ${ms} ms`)
        await sleep(25)
      }
    }
  }
  return cluster
}

/** Slot range of master i of n, as redis-cli --cluster create splits them (0-5460, 5461-10922, 10923-16383). */
function slotRange (i: number, n: number): [number, number] {
  const per = SLOTS / n
  const first = i === 0 ? 0 : Math.round(per * i - 1) + 1
  const last = i === n - 1 ? SLOTS - 1 : Math.round(per * (i + 1) - 1)
  return [first, last]
}

function parseNodes (text: string): NodeView[] {
  return text.trim().split('\n').map((line) => {
    const [id, address, flags, master, , , , link, ...slots] = line.trim().split(' ')
    const port = Number(address.split('@')[0].split(':').pop())
    return { id, port, flags: flags.split(','), master: master === '-' ? undefined : master, connected: link === 'connected', slots }
  })
}

// Below the ephemeral range (32768+), so an outgoing connection cannot take a port between check and bind;
// the cluster bus port (port + 10000) must be free too.
async function freePort (used: Set<number>): Promise<number> {
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * 12_000)
    if (used.has(port) || used.has(port + 10_000) || used.has(port - 10_000)) continue
    if (await canBind(port) && await canBind(port + 10_000)) {
      used.add(port)
      return port
    }
  }
}

async function canBind (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host: HOST, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ port, host: HOST })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}

function tail (file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-5).join('\n')
  } catch {
    return '(no log)'
  }
}
