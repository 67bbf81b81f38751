// onEvictError: 'fail' — a write whose eviction failed answers 503 instead of its own response, so a
// client (or a retrying gateway) knows that reads may still be stale. The eviction is kept and replayed
// either way (lib/stores/pending.ts).
import type { FastifyReply } from 'fastify'
import { isNodeStream } from './payload.js'

const BODY = JSON.stringify({
  statusCode: 503,
  code: 'FST_HTTP_CACHE_EVICTION_FAILED',
  error: 'Service Unavailable',
  message: 'The write was made, but the cache could not evict what it replaces; it will once the cache store answers'
})

/** Turns the reply into the 503 and returns its payload (the handler's own payload is dropped). */
export function evictionFailed (reply: FastifyReply, payload: unknown): string {
  if (isNodeStream(payload)) payload.destroy()
  reply.code(503)
  reply.header('content-type', 'application/json; charset=utf-8')
  reply.removeHeader('etag')
  reply.removeHeader('last-modified')
  return BODY
}
