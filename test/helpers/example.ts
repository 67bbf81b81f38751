import { spawn } from 'node:child_process'
import { join } from 'node:path'
import type { TapLike } from './redis.js'

export interface RunningExample {
  /** The addresses the example's servers logged, in order ("Server listening at …"). */
  urls: string[]
  /** Everything the example printed so far. */
  output: () => string
}

/**
 * Runs `examples/<file>` as `npm run example*` does (ts-node, type-checking off for speed), on free
 * ports (PORT=0), until `servers` have logged their address; killed when the test ends.
 */
export async function runExample (t: TapLike, file: string, env: Record<string, string> = {}, servers = 1): Promise<RunningExample> {
  // through sh, to drop the NODE_OPTIONS tap adds to every child (its ESM loader hooks would take the
  // .ts file from ts-node)
  const child = spawn('sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', process.execPath, '--require', 'ts-node/register', join('examples', file)], {
    cwd: join(__dirname, '..', '..'),
    env: { ...process.env, PORT: '0', ORIGIN_PORT: '0', LOG_LEVEL: 'info', TS_NODE_TRANSPILE_ONLY: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let text = ''
  const urls: string[] = []
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start:\n${text}`)), 240_000)
    const read = (chunk: Buffer): void => {
      text += chunk.toString()
      for (const m of chunk.toString().matchAll(/Server listening at (http:\/\/[^"\s]+)/g)) urls.push(m[1])
      if (urls.length >= servers) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout.on('data', read)
    child.stderr.on('data', read)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${file} exited (${String(code)}):\n${text}`))
    })
  })
  return { urls, output: () => text }
}
