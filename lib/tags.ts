// The tags (surrogate keys) an entry is stored under.
import type { FastifyRequest } from 'fastify'
import { assertName, pathOf } from './keys.js'
import type { RouteSettings } from './options.js'

/** The tag under which autoInvalidate indexes the entries of a path. */
export const pathTag = (path: string): string => `path:${path}`

/** The tags an entry of this route carries: its own, and its path's when autoInvalidate indexes it. */
export async function entryTags (route: RouteSettings, request: FastifyRequest): Promise<string[]> {
  const tags = route.tags === undefined ? [] : checkTags(await route.tags(request))
  if (route.byPath) tags.push(pathTag(pathOf(request.url)))
  return tags
}

export function checkTags (tags: unknown): string[] {
  if (!Array.isArray(tags)) throw new TypeError('fastify-http-cache: tags must be an array of tag names')
  return tags.map((tag) => assertName('a tag', tag))
}
