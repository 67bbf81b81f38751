'use strict'

// The response every benchmarked route returns: a JSON document of exactly 1024 bytes once serialized.
const SIZE = 1024

function makeBody () {
  const body = { items: [], total: 0, pad: '' }
  for (let i = 0; JSON.stringify(body).length < SIZE - 60; i++) {
    body.items.push({ id: i, name: `item-${i}`, price: 100 + i, inStock: i % 3 !== 0 })
    body.total = body.items.length
  }
  body.pad = 'x'.repeat(SIZE - JSON.stringify(body).length)
  return body
}

const body = makeBody()
const text = JSON.stringify(body)
if (Buffer.byteLength(text) !== SIZE) throw new Error(`bench body is ${Buffer.byteLength(text)} bytes, expected ${SIZE}`)

module.exports = { body, text, SIZE }
