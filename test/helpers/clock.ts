/** Moves Date.now() forward by hand for one test (the real clock is put back at teardown). */
export function clock (t: { teardown: (fn: () => void) => void }): { advance: (ms: number) => void } {
  const real = Date.now
  let offset = 0
  Date.now = () => real() + offset
  t.teardown(() => { Date.now = real })
  return { advance: (ms) => { offset += ms } }
}
