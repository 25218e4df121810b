// An independent R4 validator (Medplum's, @medplum/core) judges fhir3t's package and what fhir3t emits.
// usage: node medplum_check.mjs MEDPLUM_NODE_MODULES PROFILES_DIR BUNDLE.json...
// Prints one JSON object: the issues of each StructureDefinition (validated as a resource, then loaded
// as a profile) and of each emitted resource validated against the profile its meta.profile names.
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

// With --mutants FILE.json (a JSON array of resources): one entry per resource, its errors against the
// profile it claims and, for each of its extensions this package defines, against that extension's
// definition (what a validator following ElementDefinition.type.profile does; Medplum does not on its own).
const args = process.argv.slice(2);
const mutantsAt = args.indexOf('--mutants');
const mutantsFile = mutantsAt >= 0 ? args.splice(mutantsAt, 2)[1] : undefined;
const [modules, profilesDir, ...bundles] = args;
// @medplum/core 5 expects Node 22's global WebSocket at load time; validation never uses it
globalThis.WebSocket ??= class WebSocket {};
const require = createRequire(join(resolve(modules), 'noop.js'));
const core = require('@medplum/core');
const defs = join(modules, '@medplum', 'definitions', 'dist', 'fhir', 'r4');
const json = (p) => JSON.parse(readFileSync(p, 'utf8'));

core.indexStructureDefinitionBundle(json(join(defs, 'profiles-types.json')));
core.indexStructureDefinitionBundle(json(join(defs, 'profiles-resources.json')));

const errorsOf = (fn) => {
  try {
    return fn().filter((i) => i.severity === 'error' || i.severity === 'fatal')
      .map((i) => `${i.expression?.[0] ?? ''}: ${i.details?.text ?? ''}`);
  } catch (e) {
    const issues = e.outcome?.issue ?? [{ details: { text: String(e) } }];
    return issues.filter((i) => i.severity !== 'warning' && i.severity !== 'information')
      .map((i) => `${i.expression?.[0] ?? ''}: ${i.details?.text ?? ''}`);
  }
};

const out = { definitions: {}, resources: [], checked: 0 };
const profiles = {};
for (const f of readdirSync(profilesDir).filter((f) => f.startsWith('StructureDefinition-'))) {
  const sd = json(join(profilesDir, f));
  out.definitions[sd.url] = errorsOf(() => core.validateResource(sd));
  profiles[sd.url] = sd;
}
core.indexStructureDefinitionBundle(Object.values(profiles));
if (mutantsFile) {
  const verdicts = json(mutantsFile).map((r) => {
    const errors = [];
    for (const url of r.meta?.profile ?? []) {
      if (profiles[url]) errors.push(...errorsOf(() => core.validateResource(r, { profile: profiles[url] })));
    }
    for (const ext of r.extension ?? []) {
      const def = profiles[ext.url];
      if (def) errors.push(...errorsOf(() => core.validateTypedValue({ type: 'Extension', value: ext }, { profile: def })));
    }
    return errors;
  });
  process.stdout.write(JSON.stringify(verdicts));
  process.exit(0);
}
for (const b of bundles) {
  for (const entry of json(b).entry ?? []) {
    const r = entry.resource;
    for (const url of r.meta?.profile ?? []) {
      const profile = profiles[url];
      if (!profile) { out.resources.push({ id: r.id, url, errors: ['profile not in the package'] }); continue; }
      out.checked += 1;
      const errors = errorsOf(() => core.validateResource(r, { profile }));
      if (errors.length) out.resources.push({ type: r.resourceType, id: r.id, url, errors });
    }
  }
}
process.stdout.write(JSON.stringify(out));
