// What the browser pages take from @google/genai: the dev demo page's Gemini mode (bundled to
// service/web/static/genai.mjs by `npm run build:demo`, checked by tests/test_readme_gemini_js.py)
// and the README's Gemini snippet in headless Chromium.
export { GoogleGenAI, Modality } from "@google/genai";
