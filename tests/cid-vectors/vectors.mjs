// Prints CIDs of deterministic test files as the JS UnixFS importer (used by js-ipfs and
// Helia) computes them with kubo's `ipfs add --cid-version=1` settings: raw leaves, 256 KiB
// fixed-size chunks, balanced layout with 174 links per node. The Rust tests compare against
// this output. Usage: node vectors.mjs SIZE...
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'

// Same generator as tests/cid_vectors.rs: xorshift32 seeded from the size.
export function content (size) {
  const out = new Uint8Array(size)
  let s = (0x9e3779b9 ^ size) >>> 0
  if (s === 0) s = 1
  for (let i = 0; i < size; i++) {
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    out[i] = s & 0xff
  }
  return out
}

const opts = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 })
}

// `--dir SIZE...`: one directory whose file i (named "i") has content(SIZE_i), as
// `ipfs add -r --cid-version=1` wraps it.
if (process.argv[2] === '--dir') {
  const sizes = process.argv.slice(3).map(Number)
  const files = sizes.map((size, i) => ({ path: `${i}`, content: content(size) }))
  let last
  for await (const entry of importer(files, new MemoryBlockstore(), { ...opts, wrapWithDirectory: true })) last = entry
  process.stdout.write(JSON.stringify({ dir: sizes, cid: last.cid.toString() }) + '\n')
} else {
  const sizes = process.argv.slice(2).map(Number)
  const result = []
  for (const size of sizes) {
    let last
    for await (const entry of importer([{ content: content(size) }], new MemoryBlockstore(), opts)) last = entry
    result.push({ size, cid: last.cid.toString() })
  }
  process.stdout.write(JSON.stringify(result, null, 1) + '\n')
}
