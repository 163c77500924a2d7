// The CRD YAML and the TypeScript types are generated from agent/api/crds.ts; a stale copy fails here.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { ALL_CRDS } from '../../agent/api/crds.js';
import { REPO_ROOT, renderAll } from '../../scripts/gen-api.js';

test('committed CRDs, types, validators and the field table in docs/api.md are what agent/api/crds.ts generates (run `npm run gen` if not)', async () => {
  const generated = await renderAll();
  assert.equal(generated.size, ALL_CRDS.length + 3); // the CRDs, the types, the validators, the table in docs/api.md
  for (const [file, text] of generated) {
    const committed = await readFile(path.join(REPO_ROOT, file), 'utf8');
    assert.equal(committed, text, `${file} is stale: run \`npm run gen\``);
  }
});

test('the CRD YAML parses back to exactly the definitions', async () => {
  for (const { file, crd } of ALL_CRDS) {
    const parsed = parse(await readFile(path.join(REPO_ROOT, 'manifests/crds', file), 'utf8'));
    assert.deepEqual(parsed, JSON.parse(JSON.stringify(crd)), file);
  }
});
