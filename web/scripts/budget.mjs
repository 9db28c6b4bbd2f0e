#!/usr/bin/env node
// Gzips every JS and CSS file under dist/ and fails when the total exceeds the budget.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync, constants } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const BUDGET = Number(process.env.BUDGET_KIB || 150) * 1024;

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.(m?js|css)$/.test(name)) out.push(p);
  }
  return out;
}

let files;
try {
  files = walk(dist);
} catch {
  console.error(`budget: ${relative(root, dist)}/ not found, run "npm run build" first`);
  process.exit(1);
}
if (!files.length) {
  console.error('budget: no JS/CSS files in dist/');
  process.exit(1);
}
let total = 0;
let raw = 0;
for (const f of files.sort()) {
  const buf = readFileSync(f);
  const gz = gzipSync(buf, { level: constants.Z_BEST_COMPRESSION }).length;
  total += gz;
  raw += buf.length;
  console.log(`${(gz / 1024).toFixed(2).padStart(8)} KiB gz  ${(buf.length / 1024).toFixed(2).padStart(8)} KiB  ${relative(root, f)}`);
}
const kib = (total / 1024).toFixed(2);
console.log(`total: ${kib} KiB gzip (${(raw / 1024).toFixed(2)} KiB raw), budget ${(BUDGET / 1024).toFixed(0)} KiB`);
if (total > BUDGET) {
  console.error(`budget: FAILED — ${kib} KiB exceeds ${(BUDGET / 1024).toFixed(0)} KiB`);
  process.exit(1);
}
console.log('budget: OK');
