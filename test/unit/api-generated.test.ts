// The CRD YAML, the TypeScript types and the checks are generated from agent/api/crds.ts and the zod
// schemas (agent/config-schema.ts, agent/sources/alertmanager-schema.ts); a stale copy fails here.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { ALL_CRDS } from '../../agent/api/crds.js';
import { REPO_ROOT, renderAll } from '../../scripts/gen-api.js';

test('committed CRDs, types, checks and the field table in docs/api.md are what their sources generate (run `npm run gen` if not)', async () => {
  const generated = await renderAll();
  assert.equal(generated.size, ALL_CRDS.length + 5); // the CRDs, the types, the API's, the configuration's and Alertmanager's checks, the table in docs/api.md
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
