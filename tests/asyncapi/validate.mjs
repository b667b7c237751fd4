// Parses protocols/mqtt-api/asyncapi.yaml with the real AsyncAPI parser (file $refs to
// ./schemas/*.json resolved from disk, nothing fetched) and exits non-zero on any error-level
// diagnostic. Warnings are printed but do not fail. Usage: node validate.mjs [path]
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Parser, fromFile } from '@asyncapi/parser';

const here = dirname(fileURLToPath(import.meta.url));
const file = resolve(process.argv[2] ?? resolve(here, '../../protocols/mqtt-api/asyncapi.yaml'));

// Severity as the parser reports it (Spectral's DiagnosticSeverity): 0 error, 1 warn, 2 info, 3 hint.
const names = ['error', 'warning', 'info', 'hint'];

// Only local files: a remote $ref is a mistake in this contract, never something to fetch. The
// parser falls through to its own HTTP reader when a reader throws, so ours answers with an empty
// schema and the remote reference is reported as an error below.
const remote = [];
const refuse = (uri) => { remote.push(String(uri)); return '{}'; };
const parser = new Parser({
  __unstable: {
    resolver: {
      resolvers: [
        { schema: 'http', order: 1, canRead: true, read: refuse },
        { schema: 'https', order: 1, canRead: true, read: refuse },
      ],
    },
  },
});

readFileSync(file); // a clear ENOENT before the parser's own message
const { document, diagnostics } = await fromFile(parser, file).parse({
  source: pathToFileURL(file).href,
  validateOptions: { allowedSeverity: { warning: true, info: true, hint: true } },
});

let errors = 0;
for (const uri of remote) {
  errors += 1;
  console.log(`error: remote-ref: ${uri} is not a local file (nothing is fetched)`);
}
for (const d of diagnostics) {
  const level = names[d.severity] ?? String(d.severity);
  if (d.severity === 0) errors += 1;
  const where = d.path && d.path.length ? d.path.join('.') : '(document)';
  const src = d.source && !d.source.endsWith('asyncapi.yaml') ? ` [${d.source}]` : '';
  console.log(`${level}: ${d.code}: ${d.message} at ${where}${src}`);
}

if (!document || errors > 0) {
  console.error(`asyncapi: ${file} has ${errors} error(s)${document ? '' : ' and did not parse'}`);
  process.exit(1);
}

const ops = document.operations().length;
const chans = document.channels().length;
const msgs = document.components().messages().length;
// Every message payload must have been resolved from its schema file (no $ref left behind).
let unresolved = 0;
for (const m of document.allMessages()) {
  const p = m.payload();
  if (!p || JSON.stringify(p.json()).includes('"$ref"')) {
    console.error(`error: message ${m.id()} has an unresolved payload`);
    unresolved += 1;
  }
}
if (unresolved > 0) process.exit(1);
console.log(`asyncapi: ${file} is valid: ${chans} channels, ${ops} operations, ${msgs} messages`);
