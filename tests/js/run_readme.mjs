// Runs the JavaScript of the README's "From the browser" section in Node, against a
// broker: `node run_readme.mjs README.md http://127.0.0.1:PORT <app JWT>`. Prints one JSON
// line of what happened. Blocks marked `// runs in Node too` are run in order as one
// module; the network beyond the broker is not reached: a wss:// connection the Agents
// SDK opens (to OpenAI) is recorded and refused here.
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import https from "node:https";
import { pathToFileURL } from "node:url";

const [readmePath, broker, appJwt] = process.argv.slice(2);
const section = readFileSync(readmePath, "utf8").split("\n## From the browser")[1].split("\n## ")[0];
const blocks = [...section.matchAll(/```js\n([\s\S]*?)```/g)]
  .map((m) => m[1])
  .filter((code) => code.includes("// runs in Node too"));

const opened = [];
const minted = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  const response = await realFetch(...args);
  const body = await response.clone().json().catch(() => null);
  if (typeof body?.value === "string") minted.push(body.value);
  return response;
};
https.request = (options) => {
  opened.push({ host: options.host || options.hostname, authorization: options.headers?.Authorization });
  throw new Error("no network beyond the broker in this test");
};

const file = new URL(`./readme-${process.pid}.mjs`, import.meta.url);
const prelude = `const BROKER = ${JSON.stringify(broker)};\nconst appJwt = ${JSON.stringify(appJwt)};\n`;
writeFileSync(file, prelude + blocks.join("\n"));
const result = { blocks: blocks.length };
try {
  await import(pathToFileURL(file.pathname).href);
} catch (error) {
  result.error = String(error?.message ?? error).slice(0, 200);
} finally {
  rmSync(file);
}
result.minted = minted;
result.opened = opened;
console.log(JSON.stringify(result));
