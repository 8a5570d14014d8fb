#!/usr/bin/env node
// A `solc` command for forge built on solcjs (npm `solc`): no native solc is downloadable here.
// Supports the two calls forge makes: `--version` and `--standard-json` (input on stdin).
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, '..', 'node_modules', 'solc'));

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc.cjs supports only --version and --standard-json\n');
  process.exit(2);
}
const input = fs.readFileSync(0, 'utf8');
function findImports(p) {
  for (const base of [process.cwd(), path.join(process.cwd(), 'node_modules')]) {
    const f = path.join(base, p);
    if (fs.existsSync(f)) return { contents: fs.readFileSync(f, 'utf8') };
  }
  return { error: 'not found: ' + p };
}
process.stdout.write(solc.compile(input, { import: findImports }));
