// Parse each AsyncAPI document given on the command line with the official parser and
// print one JSON line per document: its path and every diagnostic of severity 0 (error).
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const path of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(path, "utf8"));
  const errors = diagnostics
    .filter((d) => d.severity === 0)
    .map((d) => ({ code: d.code, message: d.message, path: d.path.join("/") }));
  if (errors.length || !document) failed = true;
  console.log(JSON.stringify({ path, parsed: Boolean(document), errors }));
}
process.exit(failed ? 1 : 0);
