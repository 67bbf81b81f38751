'use strict'

// Bar chart of the benchmark's results, as a self-contained SVG (no dependencies):
//   node test/bench/chart.js [results.json] [out.svg]     defaults: test/bench/results.json, docs/bench.svg
// run.js calls writeChart() after every run. Left: median req/s per server (with × bare);
// right: median p99 latency (with × bare). Servers that were not measured are listed as such.

const fs = require('node:fs')
const path = require('node:path')
const { describeMachine } = require('./common.js')

const DEFAULT_RESULTS = path.join(__dirname, 'results.json')
const DEFAULT_OUT = path.join(__dirname, '..', '..', 'docs', 'bench.svg')

// what a row is: this plugin's cached servers, the other caches, and the uncached references
const PLUGIN = new Set(['memory', 'memory-ioredis', 'memory-http', 'memory-metrics', 'memory-status', 'redis', 'l1', 'miss'])
const PEERS = new Set(['apicache-memory', 'apicache-redis', 'lcache'])
const COLORS = { plugin: '#2f6fdf', peer: '#e08a1e', reference: '#8a8f98' }

function colorOf (id) {
  return PLUGIN.has(id) ? COLORS.plugin : PEERS.has(id) ? COLORS.peer : COLORS.reference
}

function esc (s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

const int = (n) => Math.round(n).toLocaleString('en-US')

/** A scale's top: the next "nice" number (1, 2, 2.5, 5 × 10^k) at or above `max`. */
function niceTop (max) {
  if (!(max > 0)) return 1
  const exp = 10 ** Math.floor(Math.log10(max))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= max) return m * exp
  return 10 * exp
}

/** How many intervals split [0, top] into round steps (top from niceTop). */
function ticksOf (top) {
  const m = top / 10 ** Math.floor(Math.log10(top))
  return Math.abs(m - 2) < 1e-9 ? 4 : 5
}

function renderChart (results) {
  const servers = results.servers ?? []
  const rowH = 26
  const labelW = 330
  const panelW = 330
  const gap = 40
  const top = 92
  const width = labelW + panelW * 2 + gap + 30
  const height = top + servers.length * rowH + 60
  const measured = servers.filter((s) => s.failed === undefined)
  const rpsTop = niceTop(Math.max(...measured.map((s) => s.rps), 0))
  const p99Top = niceTop(Math.max(...measured.map((s) => s.p99), 0))
  const x1 = labelW
  const x2 = labelW + panelW + gap
  const set = results.settings ?? {}
  const m = results.machine

  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="16" y="24" font-size="16" font-weight="600" fill="#111">fastify-http-cache benchmark: 1 KB JSON, ${esc(set.connections ?? '?')} connections, median of ${esc(set.rounds ?? '?')} × ${esc(set.duration ?? '?')} s</text>`)
  out.push(`<text x="16" y="44" fill="#444">${esc(m === undefined ? '' : describeMachine(m))}</text>`)
  out.push(`<text x="16" y="62" fill="#666">${esc(results.at ?? '')}${set.othersCpuWorst > 0.15 ? ' — machine not quiet during some runs: figures are noisy' : ''}</text>`)

  // panel titles and gridlines
  const panels = [
    { x: x1, title: 'requests per second (higher is better)', top: rpsTop, fmt: (v) => int(v) },
    { x: x2, title: 'p99 latency, ms (lower is better)', top: p99Top, fmt: (v) => String(Number(v.toFixed(2))) }
  ]
  for (const p of panels) {
    out.push(`<text x="${p.x}" y="${top - 14}" font-weight="600" fill="#222">${esc(p.title)}</text>`)
    const n = ticksOf(p.top)
    for (let i = 0; i <= n; i++) {
      const gx = p.x + (panelW * i) / n
      const v = (p.top * i) / n
      out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${top + servers.length * rowH}" stroke="#e3e5e8"/>`)
      out.push(`<text x="${gx}" y="${top + servers.length * rowH + 16}" text-anchor="middle" fill="#777" font-size="11">${esc(p.fmt(v))}</text>`)
    }
  }

  servers.forEach((s, i) => {
    const y = top + i * rowH
    const cy = y + rowH / 2 + 4
    out.push(`<text x="${labelW - 10}" y="${cy}" text-anchor="end" fill="#222">${esc(s.label)}</text>`)
    if (s.failed !== undefined) {
      out.push(`<text x="${x1 + 4}" y="${cy}" fill="#b00020" font-style="italic">not measured: ${esc(s.failed.length > 90 ? s.failed.slice(0, 87) + '…' : s.failed)}</text>`)
      return
    }
    const color = colorOf(s.id)
    const w1 = Math.max(1, (panelW * s.rps) / rpsTop)
    const w2 = Math.max(1, (panelW * s.p99) / p99Top)
    out.push(`<rect x="${x1}" y="${y + 4}" width="${w1.toFixed(1)}" height="${rowH - 8}" fill="${color}" rx="2"><title>${esc(`${s.label}: ${int(s.rps)} req/s`)}</title></rect>`)
    out.push(`<rect x="${x2}" y="${y + 4}" width="${w2.toFixed(1)}" height="${rowH - 8}" fill="${color}" opacity="0.75" rx="2"><title>${esc(`${s.label}: p99 ${s.p99.toFixed(2)} ms`)}</title></rect>`)
    const t1 = `${int(s.rps)}  (${s.rpsRatio.toFixed(2)}×)`
    const t2 = `${s.p99.toFixed(2)} ms  (${s.p99Ratio.toFixed(2)}×)`
    // the figure inside the bar when it fits, after it otherwise
    const place = (x, w, t) => w > t.length * 6.6 + 8
      ? `<text x="${(x + w - 6).toFixed(1)}" y="${cy}" text-anchor="end" fill="#fff">${esc(t)}</text>`
      : `<text x="${(x + w + 5).toFixed(1)}" y="${cy}" fill="#222">${esc(t)}</text>`
    out.push(place(x1, w1, t1))
    out.push(place(x2, w2, t2))
  })

  // legend
  const ly = height - 18
  let lx = 16
  for (const [name, color] of [['this plugin', COLORS.plugin], ['other caches', COLORS.peer], ['uncached references', COLORS.reference]]) {
    out.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${color}" rx="2"/>`)
    out.push(`<text x="${lx + 18}" y="${ly}" fill="#333">${esc(name)}</text>`)
    lx += 30 + name.length * 7
  }
  out.push(`<text x="${width - 16}" y="${ly}" text-anchor="end" fill="#777">× = ratio to the bare route; generated by test/bench/chart.js from results.json</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** Writes the chart of `results` to `file` (docs/bench.svg); returns the path. */
function writeChart (results, file = DEFAULT_OUT) {
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, renderChart(results))
  return file
}

module.exports = { renderChart, writeChart }

if (require.main === module) {
  const [input = DEFAULT_RESULTS, output = DEFAULT_OUT] = process.argv.slice(2)
  let results
  try {
    results = JSON.parse(fs.readFileSync(input, 'utf8'))
  } catch (err) {
    process.stderr.write(`test/bench/chart.js: cannot read ${input} (run npm run bench first): ${err.message}\n`)
    process.exit(1)
  }
  console.log(`wrote ${path.relative(process.cwd(), writeChart(results, output))}`)
}
