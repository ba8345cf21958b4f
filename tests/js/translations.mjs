// The npm SDK's translation mint against a broker:
// `node translations.mjs http://127.0.0.1:PORT <JWT of a translating role> <JWT of another>`.
// Prints one JSON line: what the first got (the secret only by its prefix), and how the
// second was refused.
import OpenAI from "openai";

const [broker, allowedJwt, refusedJwt] = process.argv.slice(2);
const client = (apiKey) => new OpenAI({ baseURL: `${broker}/v1`, apiKey, maxRetries: 0 });
const ask = {
  session: { model: "gpt-realtime-translate-pro", audio: { output: { language: "ja" } } },
  expires_after: { anchor: "created_at", seconds: 120 },
};

const result = {};
const { data, response } = await client(allowedJwt)
  .realtime.translations.clientSecrets.create(ask)
  .withResponse();
result.minted = {
  prefix: data.value.slice(0, 3),
  expires_at: data.expires_at,
  session: data.session,
  adjusted: response.headers.get("x-policy-adjusted"),
};
try {
  await client(refusedJwt).realtime.translations.clientSecrets.create(ask);
  result.refused = null;
} catch (error) {
  result.refused = { status: error.status, code: error.code, message: error.message };
}
console.log(JSON.stringify(result));
