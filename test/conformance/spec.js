'use strict'

// The cache-tests suite names the spec of each test by its anchor in RFC 9111 (https://httpwg.org/specs/rfc9111.html#<anchor>)
// or by a URL; this gives each its section number and title, for the checklist and the results files.

const RFC9111 = {
  'delta-seconds': '§1.2.2 Delta Seconds',
  'caching.overview': '§2 Overview of Cache Operation',
  'response.cacheability': '§3 Storing Responses in Caches',
  'storing.fields': '§3.1 Storing Header and Trailer Fields',
  update: '§3.2 Updating Stored Header Fields',
  'incomplete.responses': '§3.3 Storing Incomplete Responses',
  'combining.responses': '§3.4 Combining Partial Content',
  'caching.authenticated.responses': '§3.5 Storing Responses to Authenticated Requests',
  'constructing.responses.from.caches': '§4 Constructing Responses from Caches',
  'caching.negotiated.responses': '§4.1 Cache Keys with Vary',
  'expiration.model': '§4.2 Freshness',
  'calculating.freshness.lifetime': '§4.2.1 Calculating Freshness Lifetime',
  'heuristic.freshness': '§4.2.2 Heuristic Freshness',
  'age.calculations': '§4.2.3 Calculating Age',
  'serving.stale.responses': '§4.2.4 Serving Stale Responses',
  'validation.model': '§4.3 Validation',
  'validation.sent': '§4.3.1 Sending a Validation Request',
  'validation.received': '§4.3.2 Handling a Received Validation Request',
  'validation.response': '§4.3.3 Handling a Validation Response',
  'freshening.responses': '§4.3.4 Freshening Stored Responses upon Validation',
  'head.effects': '§4.3.5 Freshening Responses with HEAD',
  invalidation: '§4.4 Invalidating Stored Responses',
  'field.age': '§5.1 Age',
  'field.cache-control': '§5.2 Cache-Control',
  'cache-request-directive': '§5.2.1 Request Directives',
  'cache-request-directive.max-age': '§5.2.1.1 request max-age',
  'cache-request-directive.max-stale': '§5.2.1.2 request max-stale',
  'cache-request-directive.min-fresh': '§5.2.1.3 request min-fresh',
  'cache-request-directive.no-cache': '§5.2.1.4 request no-cache',
  'cache-request-directive.no-store': '§5.2.1.5 request no-store',
  'cache-request-directive.no-transform': '§5.2.1.6 request no-transform',
  'cache-request-directive.only-if-cached': '§5.2.1.7 request only-if-cached',
  'cache-response-directive': '§5.2.2 Response Directives',
  'cache-response-directive.max-age': '§5.2.2.1 max-age',
  'cache-response-directive.must-revalidate': '§5.2.2.2 must-revalidate',
  'cache-response-directive.must-understand': '§5.2.2.3 must-understand',
  'cache-response-directive.no-cache': '§5.2.2.4 no-cache',
  'cache-response-directive.no-store': '§5.2.2.5 no-store',
  'cache-response-directive.no-transform': '§5.2.2.6 no-transform',
  'cache-response-directive.private': '§5.2.2.7 private',
  'cache-response-directive.proxy-revalidate': '§5.2.2.8 proxy-revalidate',
  'cache-response-directive.public': '§5.2.2.9 public',
  'cache-response-directive.s-maxage': '§5.2.2.10 s-maxage',
  'cache.control.extensions': '§5.2.3 Extension Directives',
  'field.expires': '§5.3 Expires',
  'field.pragma': '§5.4 Pragma'
}

const OTHER = {
  'field.date': 'RFC 9110 §6.6.1 Date', // not an RFC 9111 anchor, though the suite links it there
  'https://www.rfc-editor.org/rfc/rfc9213.html': 'RFC 9213 Targeted Cache-Control (CDN-Cache-Control)',
  'https://www.rfc-editor.org/rfc/rfc5861.html#section-3': 'RFC 5861 §3 stale-while-revalidate',
  'https://www.rfc-editor.org/rfc/rfc5861.html#section-4': 'RFC 5861 §4 stale-if-error',
  'https://www.rfc-editor.org/rfc/rfc8246.html#section-2': 'RFC 8246 §2 immutable'
}

// groups whose tests name no anchor, nor the group
const GROUP_FALLBACK = {
  'cdn-cache-control': ['https://www.rfc-editor.org/rfc/rfc9213.html'],
  interim: ['RFC 9110 §15.2 Informational 1xx; RFC 9111 §3 (only final responses are stored)']
}

function describeAnchor (anchor) {
  if (anchor in RFC9111) return `RFC 9111 ${RFC9111[anchor]}`
  if (anchor in OTHER) return OTHER[anchor]
  return anchor.startsWith('http') || anchor.startsWith('RFC') ? anchor : `RFC 9111 #${anchor}`
}

/** The spec sections a test checks: its own anchors, else its group's. */
function specOf (group, test) {
  const anchors = test.spec_anchors ?? group.spec_anchors ?? GROUP_FALLBACK[group.id] ?? []
  return anchors.map(describeAnchor)
}

module.exports = { specOf }
