// Generates tests/fixtures/tokens/counts.json: reference token counts computed
// by js-tiktoken (a JavaScript port of OpenAI's tiktoken, independent of the
// Rust `tiktoken-rs` crate) for the `o200k_base` and `cl100k_base` encodings.
//
// Texts: N = number of tokens of `text`, encoded as ORDINARY text. Special-token
// strings such as "<|endoftext|>" are split like any other text, never mapped
// to their special ids. (js-tiktoken's `encode(text)` with its default
// arguments throws on such strings, like Python tiktoken's `encode`. So we call
// `encode(text, [], [])`: no special token allowed, none disallowed. This is
// the same as `encode_ordinary` in tiktoken / tiktoken-rs.)
//
// Chats: count by OpenAI's published recipe (openai-cookbook, "How to count
// tokens with tiktoken", num_tokens_from_messages, gpt-4 / gpt-4o family):
//
//   tokens_per_message = 3
//   tokens_per_name    = 1
//   num_tokens = 0
//   for message in messages:
//       num_tokens += tokens_per_message
//       for key, value in message.items():        # role, content, and name if present
//           num_tokens += len(encode(value))
//           if key == "name":
//               num_tokens += tokens_per_name
//   num_tokens += 3   # every reply is primed with <|start|>assistant<|message|>
//
// The cookbook's example conversation is included as chat "cookbook_example".
// Its published counts are 129 (gpt-4, cl100k_base) and 124 (gpt-4o,
// o200k_base), and the OpenAI API reported the same. This script asserts them.
//
// Everything is deterministic (no Math.random, no clock): running it twice
// gives byte-identical output. Run with: npm ci && node generate.mjs

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Tiktoken } from "js-tiktoken/lite";
import o200kRanks from "js-tiktoken/ranks/o200k_base";
import cl100kRanks from "js-tiktoken/ranks/cl100k_base";

const RECIPE =
  "Texts: number of tokens of `text` encoded as ordinary text (special-token strings such as " +
  "<|endoftext|> are tokenized as plain text, i.e. encode_ordinary). Chats (openai-cookbook " +
  "'How to count tokens with tiktoken', num_tokens_from_messages, gpt-4/gpt-4o family): for each " +
  "message add 3 (tokens_per_message), then for every key/value pair of the message (role, " +
  "content, and name if present) add the number of tokens of the value, plus 1 more " +
  "(tokens_per_name) when the key is \"name\"; finally add 3 for the reply priming " +
  "<|start|>assistant<|message|>.";

const here = dirname(fileURLToPath(import.meta.url));
const outPath = `${here}/../../tests/fixtures/tokens/counts.json`;
const jsTiktokenVersion = JSON.parse(
  readFileSync(`${here}/node_modules/js-tiktoken/package.json`, "utf8"),
).version;

const encodings = {
  o200k_base: new Tiktoken(o200kRanks),
  cl100k_base: new Tiktoken(cl100kRanks),
};

function count(encName, text) {
  const enc = encodings[encName];
  const tokens = enc.encode(text, [], []);
  // Self-check: a correct BPE round-trips exactly.
  if (enc.decode(tokens) !== text) {
    throw new Error(`${encName}: decode(encode(x)) != x for ${JSON.stringify(text.slice(0, 40))}`);
  }
  return tokens.length;
}

function countChat(encName, messages) {
  const tokensPerMessage = 3;
  const tokensPerName = 1;
  let n = 0;
  for (const message of messages) {
    n += tokensPerMessage;
    for (const [key, value] of Object.entries(message)) {
      n += count(encName, value);
      if (key === "name") n += tokensPerName;
    }
  }
  n += 3; // every reply is primed with <|start|>assistant<|message|>
  return n;
}

// Deterministic pseudo-random: 32-bit LCG (Numerical Recipes constants),
// state = state * 1664525 + 1013904223 mod 2^32, seed 0x2545F491; each
// character takes the top 6 bits of the state as a base64 alphabet index.
function lcgBase64(length, seed = 0x2545f491) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let state = seed >>> 0;
  let out = "";
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out += alphabet[state >>> 26];
  }
  return out;
}

// ~10 KB paragraph: cycle through varied sentences, numbering each one, until
// the paragraph reaches 10240 UTF-16 code units (all ASCII, so also bytes).
function longParagraph() {
  const sentences = [
    "The quick brown fox jumps over the lazy dog.",
    "Conversation history is stored per user and trimmed when it grows too large.",
    "On 2024-03-15 the service handled 1,234,567 requests with a p99 latency of 87 ms.",
    "She said, \"Don't forget to rotate the keys before Friday!\"",
    "Tokenizers split text into pieces; counting them precisely matters for context limits.",
    "Why would anyone write a sentence like this one, full of commas, semicolons; and colons: really?",
    "CamelCaseIdentifiers and snake_case_identifiers and kebab-case-identifiers all tokenize differently.",
    "In 1969, Apollo 11 landed on the Moon; the crew returned safely eight days later.",
    "Numbers like 3.14159, 2.71828 and 1.41421 show up in scientific prose all the time.",
    "A well-designed API returns 429 Too Many Requests with a Retry-After header.",
    "It's the user's job to decide; we'll only suggest, and they've always agreed so far.",
    "UPPERCASE WORDS, lowercase words, and MiXeD cAsE words end this little cycle.",
  ];
  let text = "";
  for (let i = 0; text.length < 10240; i++) {
    text += `${i === 0 ? "" : " "}(${i + 1}) ${sentences[i % sentences.length]}`;
  }
  return text;
}

const texts = [
  // Plain English
  ["hello_world", "hello world"],
  ["hello_world_capitalized", "Hello, World!"],
  ["english_sentence", "The quick brown fox jumps over the lazy dog."],
  ["english_contractions", "I'm sure they'll say it's fine, but we've seen what's happened and you'd DON'T believe it."],
  ["english_paragraph",
    "Chat history lets an assistant remember what was said earlier in a conversation. " +
    "When the history becomes too long, older messages are summarized or dropped so that " +
    "the prompt fits within the model's context window."],
  // Whitespace
  ["empty", ""],
  ["single_space", " "],
  ["spaces_run", "          "],
  ["newlines_and_tabs", "line one\nline two\n\n\tindented\r\nwindows line\r\n   trailing   \n"],
  ["whitespace_only_mixed", " \t \n\n \r\n\t\t  \n"],
  // Numbers and dates
  ["numbers", "0 7 42 1234567890 -17 3.14159 6.02e23 1,000,000 $1,234.56 99%"],
  ["dates_times", "2024-06-30T12:34:56Z, 30/06/2024, June 30th 2024, 12:34:56.789 +02:00"],
  // Non-ASCII Latin and other scripts
  ["latin_diacritics", "Café naïve façade, Straße und Größe, smørrebrød på Ærø, ¿Qué pasó? Ça va très bien."],
  ["combining_marks", "e\u0301 (decomposed) vs \u00e9 (precomposed); n\u0303; A\u030a"],
  ["greek", "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο."],
  ["cyrillic", "Съешь же ещё этих мягких французских булок, да выпей чаю."],
  ["arabic_rtl", "مرحبا بالعالم! هذه جملة باللغة العربية تُكتب من اليمين إلى اليسار."],
  ["hebrew_rtl", "שלום עולם! זהו משפט בעברית שנכתב מימין לשמאל."],
  ["chinese", "我们的聊天记录服务会保存用户的对话历史，并在上下文过长时进行裁剪。"],
  ["japanese", "こんにちは、世界！今日はいい天気ですね。カタカナとひらがなと漢字が混ざっています。"],
  ["korean", "안녕하세요, 세계! 오늘 날씨가 정말 좋네요."],
  ["hindi", "नमस्ते दुनिया! यह हिंदी में लिखा गया एक वाक्य है।"],
  ["mixed_scripts", "English, Français, Deutsch, Русский, Ελληνικά, العربية, עברית, 中文, 日本語, 한국어, हिन्दी"],
  // Emoji
  ["emoji_single", "👍"],
  ["emoji_zwj_family", "👨‍👩‍👧‍👦"],
  ["emoji_flags", "🇫🇷🇯🇵🇺🇸🇧🇷🇮🇳"],
  ["emoji_skin_tones", "👋🏻 👋🏽 👋🏿 👍🏼"],
  ["emoji_in_sentence", "Great job! 🎉🎉 Let's ship it 🚀 — tests are green ✅ and coffee is ☕."],
  // Code
  ["code_rust",
    "fn main() {\n    let v: Vec<u32> = (1..=10).filter(|x| x % 2 == 0).collect();\n" +
    "    println!(\"{:?}\", v);\n}\n\nimpl<T: Clone> Wrapper<T> {\n    pub fn get(&self) -> Option<&T> { self.0.as_ref() }\n}\n"],
  ["code_python",
    "def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n" +
    "    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nif __name__ == \"__main__\":\n    print([fib(i) for i in range(10)])\n"],
  ["code_json",
    "{\n  \"id\": \"chat_01HZX3\",\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"Hi!\"},\n" +
    "    {\"role\": \"assistant\", \"content\": \"Hello, how can I help?\"}\n  ],\n  \"tokens\": 42,\n  \"archived\": false,\n  \"tags\": null\n}"],
  ["code_shell", "find . -name '*.log' -mtime +7 -print0 | xargs -0 gzip -9 && echo \"done: $(date -u +%FT%TZ)\" >> ~/cleanup.log 2>&1"],
  ["code_sql",
    "SELECT c.id, COUNT(m.id) AS n_messages, MAX(m.created_at)\nFROM conversations c\n" +
    "LEFT JOIN messages m ON m.conversation_id = c.id\nWHERE c.user_id = $1 AND m.deleted_at IS NULL\n" +
    "GROUP BY c.id\nHAVING COUNT(m.id) > 10\nORDER BY 3 DESC\nLIMIT 50;"],
  ["markdown_table",
    "# Token budget\n\nSome **bold**, some _italic_, and `inline code`.\n\n" +
    "| Model | Encoding | Context |\n|:------|:--------:|--------:|\n| gpt-4o | o200k_base | 128,000 |\n" +
    "| gpt-4 | cl100k_base | 8,192 |\n\n- item one\n- item two\n  1. nested\n\n> quoted text\n"],
  ["url", "https://example.com/api/v1/conversations/8f14e45f-ceea-467f-a0e6-3c1a2b9d7e10/messages?limit=50&before=2024-06-30T12%3A00%3A00Z#latest"],
  // Long words
  ["long_word_a_3000", "a".repeat(3000)],
  ["base64_lcg_500", lcgBase64(500)],
  // Special-token strings as ordinary text
  ["special_token_text",
    "Documents are separated by <|endoftext|> in training data; <|endofprompt|> and <|im_start|> are just text here."],
  ["special_token_only", "<|endoftext|>"],
  // Big paragraph
  ["paragraph_10kb", longParagraph()],
];

const longChatTurns = [];
for (let i = 0; i < 12; i++) {
  longChatTurns.push({
    role: "user",
    content: `Question ${i + 1}: can you explain step ${i + 1} of the migration plan in more detail? ` +
      "Please include the rollback procedure, the expected downtime, and any risks.",
  });
  longChatTurns.push({
    role: "assistant",
    content: `Step ${i + 1} moves the conversations partition ${i} to the new store. ` +
      "First we copy the data while writes continue, then we replay the change log, " +
      "and finally we switch reads over. Rollback means switching reads back; " +
      `expected downtime is under ${i + 2} seconds. Risks: replication lag and hot partitions.`,
  });
}

const chats = [
  ["simple", [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "hello world" },
  ]],
  ["multi_turn", [
    { role: "system", content: "You are a concise assistant. Answer in one sentence." },
    { role: "user", content: "What is the capital of France?" },
    { role: "assistant", content: "The capital of France is Paris." },
    { role: "user", content: "And its population?" },
  ]],
  ["cookbook_example", [
    { role: "system", content: "You are a helpful, pattern-following assistant that translates corporate jargon into plain English." },
    { role: "system", name: "example_user", content: "New synergies will help drive top-line growth." },
    { role: "system", name: "example_assistant", content: "Things working well together will increase revenue." },
    { role: "system", name: "example_user", content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage." },
    { role: "system", name: "example_assistant", content: "Let's talk later when we're less busy about how to do better." },
    { role: "user", content: "This late pivot means we don't have time to boil the ocean for the client deliverable." },
  ]],
  ["with_names", [
    { role: "system", content: "Two users share this conversation." },
    { role: "user", name: "alice", content: "Hi, I'm Alice." },
    { role: "user", name: "bob_42", content: "And I'm Bob." },
    { role: "assistant", content: "Nice to meet you both!" },
  ]],
  ["non_ascii", [
    { role: "system", content: "Réponds en français, s'il te plaît." },
    { role: "user", content: "Was ist der Unterschied zwischen „Straße“ und „Strasse“?" },
    { role: "assistant", content: "В Швейцарии пишут «ss» вместо «ß». 瑞士不使用ß。" },
    { role: "user", content: "شكرا! תודה! ありがとう! 감사합니다! धन्यवाद!" },
  ]],
  ["emoji", [
    { role: "user", content: "Rate my day: ☀️🏖️🍦 then 🌧️😭" },
    { role: "assistant", content: "👨‍👩‍👧‍👦 family time sounds great! 👍🏽 🇯🇵🇫🇷" },
  ]],
  ["empty_content", [
    { role: "system", content: "" },
    { role: "user", content: "" },
    { role: "assistant", content: "" },
  ]],
  ["tool_message", [
    { role: "user", content: "What's the weather in Oslo?" },
    { role: "assistant", content: "" },
    { role: "tool", name: "get_weather", content: "{\"city\":\"Oslo\",\"temp_c\":-3.5,\"conditions\":\"snow\",\"wind_kmh\":12}" },
    { role: "assistant", content: "It is -3.5 °C and snowing in Oslo, with wind at 12 km/h." },
  ]],
  ["long_conversation", [
    { role: "system", content: "You are a database migration expert. Be thorough and precise." },
    ...longChatTurns,
  ]],
];

// Assemble and check.
const names = new Set();
function uniqueName(name) {
  if (names.has(name)) throw new Error(`duplicate name ${name}`);
  names.add(name);
  return name;
}

const out = {
  generated_by: `js-tiktoken ${jsTiktokenVersion}`,
  recipe: RECIPE,
  texts: texts.map(([name, text]) => ({
    name: uniqueName(name),
    text,
    o200k_base: count("o200k_base", text),
    cl100k_base: count("cl100k_base", text),
  })),
  chats: chats.map(([name, messages]) => ({
    name: uniqueName(name),
    messages,
    o200k_base: countChat("o200k_base", messages),
    cl100k_base: countChat("cl100k_base", messages),
  })),
};

function expect(kind, name, enc, want) {
  const got = out[kind].find((x) => x.name === name)[enc];
  if (got !== want) throw new Error(`${kind}/${name} ${enc}: got ${got}, expected ${want}`);
}
expect("texts", "hello_world", "o200k_base", 2);
expect("texts", "hello_world", "cl100k_base", 2);
expect("texts", "empty", "o200k_base", 0);
expect("texts", "empty", "cl100k_base", 0);
expect("chats", "cookbook_example", "cl100k_base", 129); // gpt-4, published by the cookbook
expect("chats", "cookbook_example", "o200k_base", 124); // gpt-4o, published by the cookbook

mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, JSON.stringify(out, null, 2) + "\n");
console.log(`wrote ${outPath}: ${out.texts.length} texts, ${out.chats.length} chats (${out.generated_by})`);
