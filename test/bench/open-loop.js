'use strict'

// Open-loop load for latency at the same load: `rate` requests per second over keep-alive sockets,
// each request due at its own time (1/rate apart) whether or not earlier ones came back, its latency
// counted from when it was due, so a server that stalls is not excused by a generator that waits for
// it (no coordinated omission). autocannon's rate option cannot do this: each connection sends its
// quota for the second back to back, then idles, so its "fixed rate" is a burst at saturation.
// The benchmarked servers answer with Content-Length (no chunked bodies): that is all this parses.

const net = require('node:net')
const { performance } = require('node:perf_hooks')
const { Samples } = require('./common.js')

const HEAD_END = Buffer.from('\r\n\r\n')
const LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i

function connect (host, port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true }, () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

/**
 * Resolves to { rps, p50, p99, ok, errors, non2xx } of `duration` s of GET `url` at `rate` req/s.
 * `connections` bounds the requests in flight; requests due while all are busy wait their turn (and
 * their wait counts in their latency).
 */
async function openLoop (url, { rate, duration, connections }) {
  const { hostname, port, pathname, search } = new URL(url)
  const request = Buffer.from(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`)
  const samples = new Samples()
  const idle = []
  const waiting = [] // due times of requests no socket was free for
  let head = 0 // first of `waiting` not yet sent
  let errors = 0
  let non2xx = 0
  let inFlight = 0
  let failure = null

  const send = (conn, due) => {
    conn.due = due
    inFlight++
    conn.socket.write(request)
  }
  const onResponse = (conn, status) => {
    const now = performance.now()
    inFlight--
    if (status >= 200 && status < 300) samples.push(now - conn.due)
    else non2xx++
    if (head < waiting.length) send(conn, waiting[head++])
    else idle.push(conn)
  }

  const sockets = await Promise.all(Array.from({ length: connections }, () => connect(hostname, Number(port))))
  for (const socket of sockets) {
    const conn = { socket, due: 0, buf: Buffer.alloc(0), need: -1, status: 0 }
    socket.on('data', (chunk) => {
      conn.buf = conn.buf.length === 0 ? chunk : Buffer.concat([conn.buf, chunk])
      for (;;) {
        if (conn.need < 0) {
          const end = conn.buf.indexOf(HEAD_END)
          if (end === -1) return
          const head = conn.buf.toString('latin1', 0, end)
          const length = LENGTH.exec(head)
          if (length === null) {
            failure ??= new Error(`${url} answered without Content-Length: ${JSON.stringify(head.slice(0, 200))}`)
            socket.destroy()
            return
          }
          conn.status = Number(head.slice(9, 12))
          conn.need = end + HEAD_END.length + Number(length[1])
        }
        if (conn.buf.length < conn.need) return
        conn.buf = conn.buf.subarray(conn.need)
        conn.need = -1
        onResponse(conn, conn.status)
      }
    })
    socket.on('error', () => { errors++ })
    socket.on('close', () => {
      if (conn.need !== -1 || inFlight > 0) failure ??= new Error(`${url} closed a connection with a request in flight`)
    })
    idle.push(conn)
  }

  // Requests go out as they fall due; the loop spins on setImmediate (the load generator has its CPU
  // to itself) so none is sent late by a timer's granularity.
  const interval = 1000 / rate
  const start = performance.now()
  const end = start + duration * 1000
  let next = start
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now()
      while (next <= now && next < end) {
        const conn = idle.pop()
        if (conn !== undefined) send(conn, next)
        else waiting.push(next)
        next += interval
      }
      if (failure !== null || (next >= end && inFlight === 0 && head >= waiting.length) || now > end + 10_000) resolve()
      else setImmediate(tick)
    }
    tick()
  })
  const elapsed = (performance.now() - start) / 1000
  for (const socket of sockets) socket.destroy()
  if (failure !== null) throw failure
  return {
    rps: samples.length / elapsed,
    p50: samples.percentile(50),
    p99: samples.percentile(99),
    ok: samples.length,
    errors: errors + (waiting.length - head) + inFlight,
    non2xx
  }
}

module.exports = { openLoop }
